package credential

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/proxyauth/proxyauth/internal/hosts"
	"github.com/proxyauth/proxyauth/internal/redact"
)

// OAuth2Config configures an [OAuth2] credential: the RFC 6749 client
// credentials grant.
//
// Printing an OAuth2Config with any fmt verb, logging it with log/slog or
// encoding it as JSON shows ClientSecret as REDACTED, PrivateKey as its type,
// ClientAssertion as set, and only the names of EndpointParams.
type OAuth2Config struct {
	// ClientID identifies the client. Required.
	ClientID string

	// ClientSecret authenticates the client with client_secret_basic or
	// client_secret_post (see AuthStyle). It never appears in an error, a
	// log or a printed value.
	ClientSecret string

	// TokenURL is the token endpoint. Required. It must be https, or http
	// to a loopback host only (127.0.0.0/8, ::1, "localhost"), since the
	// client's credentials travel in every request. It may have a query,
	// which is kept in requests and left out of error messages.
	TokenURL string

	// AuthStyle says how the client sends ClientSecret; it applies to
	// ClientSecret only. The zero value is AuthStyleAuto.
	AuthStyle AuthStyle

	// EndpointParams are extra form fields of every token request, such as
	// audience (Auth0) or resource (RFC 8707). nil adds none. They cannot
	// set grant_type, client_id, client_secret, client_assertion,
	// client_assertion_type or scope: NewOAuth2 refuses them. NewOAuth2
	// copies the map.
	EndpointParams url.Values

	// HTTPClient sends the token requests. nil means a shared client with
	// a 30 second timeout per request and bounded dial, TLS handshake and
	// response header waits. Redirects are never followed, whatever the
	// client's CheckRedirect: they would carry the client's credentials.
	// Whatever the client, a request ends when the context given to
	// GetToken does.
	//
	// A client with a TLS client certificate and no ClientSecret,
	// PrivateKey or ClientAssertion is RFC 8705 mutual-TLS client
	// authentication (tls_client_auth, self_signed_tls_client_auth):
	// client_id goes in the form, and the certificate proves who sends it.
	HTTPClient *http.Client

	// Client authentication without a shared secret. At most one of
	// ClientSecret, PrivateKey and ClientAssertion may be set (NewOAuth2
	// names the fields that clash). With none of them, the client
	// authenticates by its TLS certificate (RFC 8705): that needs an
	// HTTPClient (with nil, NewOAuth2 says that a secret, a key or an
	// assertion is required).
	//
	// With PrivateKey or ClientAssertion, client_id is always sent in the
	// form too, and there is neither a client_secret nor an Authorization
	// header. KeyID, Certificate, AssertionAudience and SigningMethod
	// without PrivateKey, or a non-zero AuthStyle with a key or an
	// assertion, are refused by NewOAuth2, naming the field. An assertion
	// is as secret as a client secret: it is scrubbed from echoed error
	// bodies, and no printed config or error shows a key or an assertion.

	// PrivateKey is private_key_jwt (RFC 7523 section 2.2, OIDC Core
	// section 9). Each token request carries
	// client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
	// and a new JWT signed with the key: iss = sub = ClientID, aud =
	// AssertionAudience (default TokenURL) as one JSON string (not an
	// array), a random jti, iat, nbf, exp at most 5 minutes on; "kid" only
	// when KeyID is set. RS256 for RSA keys (2048 bits or more),
	// ES256/384/512 for ECDSA P-256/384/521, PS256 when SigningMethod says
	// so. Any [crypto.Signer] whose public key is RSA or ECDSA works, so
	// that a key in an HSM, a KMS or a TPM can sign: the library calls the
	// signer, it never needs the private key's bytes. The JWT is built and
	// signed with github.com/golang-jwt/jwt/v5, not by hand.
	PrivateKey crypto.Signer

	// KeyID is the "kid" header of the assertion (Okta, Keycloak, Auth0):
	// the ID under which the server knows the public key.
	KeyID string

	// Certificate adds the "x5t" (SHA-1) and "x5t#S256" headers of the
	// assertion, as Entra wants for certificate credentials. Its public key
	// must be PrivateKey's.
	Certificate *x509.Certificate

	// AssertionAudience is the "aud" claim of the assertion; empty means
	// TokenURL. Set it to the issuer for servers that follow
	// draft-ietf-oauth-rfc7523bis, which want the issuer alone.
	AssertionAudience string

	// SigningMethod is "", "RS256", "PS256", "ES256", "ES384" or "ES512"
	// (exact names). "" picks by key type: RS256 for RSA, ES256, ES384 or
	// ES512 for ECDSA P-256, P-384 or P-521. One that does not fit the key
	// is refused.
	SigningMethod string

	// ClientAssertion returns a ready assertion (workload identity
	// federation: a Kubernetes service account token, a CI system's OIDC
	// token, a SPIFFE JWT-SVID), sent with the same client_assertion_type.
	// It is called once per token request, so a rotated file is re-read
	// (see [AssertionFromFile]). It must be safe for concurrent use.
	ClientAssertion func(ctx context.Context) (string, error)
}

// String returns a description of c with ClientSecret redacted, PrivateKey
// as its type, ClientAssertion as set and only the names of EndpointParams,
// which may carry credentials of their own. The fields of secret-less
// client authentication appear only when they are set.
func (c OAuth2Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "credential.OAuth2Config{ClientID:%q ClientSecret:", c.ClientID)
	if c.ClientSecret == "" {
		b.WriteString(`""`)
	} else {
		b.WriteString(redacted)
	}
	fmt.Fprintf(&b, " TokenURL:%q AuthStyle:%v EndpointParams:%v HTTPClient:", redactURL(c.TokenURL), c.AuthStyle, sortedKeys(c.EndpointParams))
	if c.HTTPClient == nil {
		b.WriteString("nil")
	} else {
		b.WriteString("set")
	}
	if c.PrivateKey != nil {
		fmt.Fprintf(&b, " PrivateKey:%s", keyType(c.PrivateKey))
	}
	if c.KeyID != "" {
		fmt.Fprintf(&b, " KeyID:%q", c.KeyID)
	}
	if c.Certificate != nil {
		b.WriteString(" Certificate:set")
	}
	if c.AssertionAudience != "" {
		fmt.Fprintf(&b, " AssertionAudience:%q", redactURL(c.AssertionAudience))
	}
	if c.SigningMethod != "" {
		fmt.Fprintf(&b, " SigningMethod:%q", c.SigningMethod)
	}
	if c.ClientAssertion != nil {
		b.WriteString(" ClientAssertion:set")
	}
	b.WriteByte('}')
	return b.String()
}

// Format implements [fmt.Formatter] so that every verb and flag, %#v and %+v
// included, prints the redacted String.
func (c OAuth2Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String()) }

// MarshalJSON implements [json.Marshaler] like LogValue: ClientSecret
// redacted, PrivateKey as its type, ClientAssertion as set, only the names
// of EndpointParams. A config therefore does not survive a JSON round trip:
// secrets are not meant to be stored this way.
func (c OAuth2Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ClientID          string   `json:"client_id"`
		ClientSecret      string   `json:"client_secret"`
		TokenURL          string   `json:"token_url"`
		AuthStyle         string   `json:"auth_style"`
		EndpointParams    []string `json:"endpoint_params"`
		PrivateKey        string   `json:"private_key,omitempty"`
		KeyID             string   `json:"key_id,omitempty"`
		Certificate       string   `json:"certificate,omitempty"`
		AssertionAudience string   `json:"assertion_audience,omitempty"`
		SigningMethod     string   `json:"signing_method,omitempty"`
		ClientAssertion   string   `json:"client_assertion,omitempty"`
	}{
		c.ClientID, redactedOrEmpty(c.ClientSecret), redactURL(c.TokenURL), c.AuthStyle.String(), sortedKeys(c.EndpointParams),
		keyType(c.PrivateKey), c.KeyID, setOrEmpty(c.Certificate != nil), redactURLOrEmpty(c.AssertionAudience),
		c.SigningMethod, setOrEmpty(c.ClientAssertion != nil),
	})
}

// LogValue implements [slog.LogValuer] with ClientSecret redacted,
// PrivateKey as its type and ClientAssertion as set. The fields of
// secret-less client authentication are attributes only when they are set.
func (c OAuth2Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("client_id", c.ClientID),
		slog.String("client_secret", redactedOrEmpty(c.ClientSecret)),
		slog.String("token_url", redactURL(c.TokenURL)),
		slog.String("auth_style", c.AuthStyle.String()),
		slog.Any("endpoint_params", sortedKeys(c.EndpointParams)),
	}
	for _, a := range []slog.Attr{
		slog.String("private_key", keyType(c.PrivateKey)),
		slog.String("key_id", c.KeyID),
		slog.String("certificate", setOrEmpty(c.Certificate != nil)),
		slog.String("assertion_audience", redactURLOrEmpty(c.AssertionAudience)),
		slog.String("signing_method", c.SigningMethod),
		slog.String("client_assertion", setOrEmpty(c.ClientAssertion != nil)),
	} {
		if a.Value.String() != "" {
			attrs = append(attrs, a)
		}
	}
	return slog.GroupValue(attrs...)
}

// keyType names the type of a signer, which says where the key lives (a
// *rsa.PrivateKey, a KMS client's type) without showing anything of it;
// "" for nil.
func keyType(k crypto.Signer) string {
	if k == nil {
		return ""
	}
	return fmt.Sprintf("%T", k)
}

func setOrEmpty(set bool) string {
	if set {
		return "set"
	}
	return ""
}

func redactURLOrEmpty(raw string) string {
	if raw == "" {
		return ""
	}
	return redactURL(raw)
}

func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// AuthStyle says how an [OAuth2] client authenticates to the token endpoint
// (RFC 6749 section 2.3.1).
type AuthStyle int

const (
	// AuthStyleAuto tries HTTP Basic first. When the server answers it with
	// an OAuth2 error (a 4xx status other than 429, or an error field in a
	// 2xx answer), it tries form fields. A network error, a 429 or a 5xx
	// answer is returned as it is: those say nothing about the auth style.
	// The style that worked is remembered for the token URL and client ID
	// of the OAuth2; if both fail, the second error is returned.
	AuthStyleAuto AuthStyle = iota

	// AuthStyleHeader is client_secret_basic: HTTP Basic authentication
	// with the form-urlencoded client ID and secret.
	AuthStyleHeader

	// AuthStyleParams is client_secret_post: client_id and client_secret
	// form fields.
	AuthStyleParams
)

// String returns "Auto", "Header", "Params" or "AuthStyle(n)".
func (s AuthStyle) String() string {
	switch s {
	case AuthStyleAuto:
		return "Auto"
	case AuthStyleHeader:
		return "Header"
	case AuthStyleParams:
		return "Params"
	}
	return fmt.Sprintf("AuthStyle(%d)", int(s))
}

// OAuth2 gets tokens with the RFC 6749 client credentials grant from any
// compliant server (Okta, Auth0, Keycloak, Microsoft Entra ID, ...).
//
// It fetches a new token on every call: caching is the transport's job. It is
// safe for concurrent use, and no fmt verb prints its secret, key or
// assertion.
type OAuth2 struct {
	clientID   string
	tokenURL   string // as configured, query included
	displayURL string // for messages: no user info, query or fragment
	authStyle  AuthStyle
	params     url.Values // EndpointParams, copied
	client     *http.Client
	auth       clientAuth

	// signer makes the assertions of private_key_jwt; nil otherwise.
	signer *assertionSigner

	// assertion returns the client assertion of one token request, for
	// authKey (signer's) and authAssertion (ClientAssertion); nil otherwise.
	assertion func(context.Context) (string, error)

	// secrets holds the client secret and the forms in which a server
	// could echo it; a pointer, so that printing an OAuth2 value (not
	// through Format) shows an address rather than the secret.
	secrets *scrubber

	// learned is the AuthStyle that worked for AuthStyleAuto, or
	// AuthStyleAuto while none has.
	learned atomic.Int32
}

var _ TokenCredential = (*OAuth2)(nil)

// clientAuth is how an OAuth2 authenticates to the token endpoint.
type clientAuth int

const (
	authSecret    clientAuth = iota // ClientSecret, in AuthStyle
	authKey                         // private_key_jwt with PrivateKey
	authAssertion                   // ClientAssertion
	authTLS                         // RFC 8705: the HTTPClient's certificate
)

// assertionType is the client_assertion_type of RFC 7523 section 2.2.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// reservedParams are the form fields that EndpointParams cannot set.
var reservedParams = []string{"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type", "scope"}

// NewOAuth2 returns an OAuth2 credential for cfg. It checks cfg and returns
// an error that names the bad field:
//   - ClientID and TokenURL are required; TokenURL must be an absolute https
//     URL (or http to a loopback host) without user info;
//   - at most one of ClientSecret, PrivateKey and ClientAssertion is set, and
//     with none of them HTTPClient must be set (RFC 8705 mutual TLS);
//   - AuthStyle is one of the constants, and not AuthStyleAuto only with
//     ClientSecret;
//   - KeyID, Certificate, AssertionAudience and SigningMethod are set only
//     with PrivateKey;
//   - PrivateKey's public key is RSA of 2048 bits or more, or ECDSA on P-256,
//     P-384 or P-521; SigningMethod fits it; Certificate holds it;
//   - EndpointParams does not set grant_type, client_id, client_secret,
//     client_assertion, client_assertion_type or scope.
func NewOAuth2(cfg OAuth2Config) (*OAuth2, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("credential: OAuth2Config.ClientID is required")
	}
	auth, err := checkClientAuth(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkTokenURL(cfg.TokenURL); err != nil {
		return nil, err
	}
	for _, k := range reservedParams {
		if _, ok := cfg.EndpointParams[k]; ok {
			return nil, fmt.Errorf("credential: OAuth2Config.EndpointParams must not set %q: the grant and the client authentication set it (pass the scope to GetToken)", k)
		}
	}
	o := &OAuth2{
		clientID:   cfg.ClientID,
		tokenURL:   cfg.TokenURL,
		displayURL: redactURL(cfg.TokenURL),
		authStyle:  cfg.AuthStyle,
		params:     cloneValues(cfg.EndpointParams),
		client:     noRedirects(cfg.HTTPClient),
		auth:       auth,
		secrets:    newScrubberForms("", nil),
	}
	switch auth {
	case authSecret:
		o.secrets = newScrubber(cfg.ClientID, cfg.ClientSecret)
	case authKey:
		aud := cfg.AssertionAudience
		if aud == "" {
			aud = cfg.TokenURL
		}
		o.signer, err = newAssertionSigner(cfg.ClientID, aud, cfg.PrivateKey, cfg.SigningMethod, cfg.KeyID, cfg.Certificate)
		if err != nil {
			return nil, err
		}
		o.signer.ownAud = cfg.AssertionAudience != ""
		o.assertion = o.signer.assertion
	case authAssertion:
		o.assertion = cfg.ClientAssertion
	}
	return o, nil
}

// checkClientAuth checks the fields of client authentication and returns
// the way cfg authenticates. The checks of the key itself are
// newAssertionSigner's.
func checkClientAuth(cfg OAuth2Config) (clientAuth, error) {
	var set []string
	auth := authTLS
	if cfg.ClientSecret != "" {
		set, auth = append(set, "ClientSecret"), authSecret
	}
	if cfg.PrivateKey != nil {
		set, auth = append(set, "PrivateKey"), authKey
	}
	if cfg.ClientAssertion != nil {
		set, auth = append(set, "ClientAssertion"), authAssertion
	}
	switch {
	case len(set) > 1:
		which := "both"
		if len(set) > 2 {
			which = "all"
		}
		return 0, fmt.Errorf("credential: OAuth2Config.%s are %s set; set one of ClientSecret, PrivateKey and ClientAssertion", strings.Join(set, " and "), which)
	case auth == authTLS && cfg.HTTPClient == nil:
		return 0, errors.New("credential: OAuth2Config.ClientSecret, PrivateKey or ClientAssertion is required: a secret, a key or an assertion (or an HTTPClient whose TLS client certificate authenticates the client, RFC 8705)")
	}
	switch cfg.AuthStyle {
	case AuthStyleAuto, AuthStyleHeader, AuthStyleParams:
	default:
		return 0, fmt.Errorf("credential: OAuth2Config.AuthStyle %d is not one of AuthStyleAuto, AuthStyleHeader, AuthStyleParams", int(cfg.AuthStyle))
	}
	if cfg.AuthStyle != AuthStyleAuto && auth != authSecret {
		return 0, fmt.Errorf("credential: OAuth2Config.AuthStyle %v applies to ClientSecret only; leave it zero with %s", cfg.AuthStyle, authField(auth))
	}
	if auth != authKey {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"KeyID", cfg.KeyID != ""},
			{"Certificate", cfg.Certificate != nil},
			{"AssertionAudience", cfg.AssertionAudience != ""},
			{"SigningMethod", cfg.SigningMethod != ""},
		} {
			if f.set {
				return 0, fmt.Errorf("credential: OAuth2Config.%s is set without PrivateKey; it applies to private_key_jwt only", f.name)
			}
		}
	}
	return auth, nil
}

// authField names what a clientAuth comes from, for messages.
func authField(a clientAuth) string {
	switch a {
	case authKey:
		return "PrivateKey"
	case authAssertion:
		return "ClientAssertion"
	case authTLS:
		return "a TLS client certificate (no ClientSecret, PrivateKey or ClientAssertion)"
	}
	return "ClientSecret"
}

func checkTokenURL(raw string) error {
	if raw == "" {
		return errors.New("credential: OAuth2Config.TokenURL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the input, which is the configured URL and so
		// no secret; keep only the reason to stay short.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("credential: OAuth2Config.TokenURL does not parse: %w", err)
	}
	if u.User != nil {
		return errors.New("credential: OAuth2Config.TokenURL must not contain user info; set ClientID and the client's credentials instead")
	}
	if u.Host == "" {
		return fmt.Errorf("credential: OAuth2Config.TokenURL %q is not an absolute URL with a host", redactURL(raw))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if hosts.IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("credential: OAuth2Config.TokenURL %q must be https: plain http is allowed to loopback hosts only, since the client's credentials are sent", redactURL(raw))
	}
	return fmt.Errorf("credential: OAuth2Config.TokenURL %q must be an https URL", redactURL(raw))
}

// redactURL returns raw without user info, query and fragment, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = slices.Clone(vs)
	}
	return c
}

// noRedirects returns a copy of client (nil: the default client) that does
// not follow redirects. net/http resends a POST on 307 and 308, form body
// and Basic header included, so following a token endpoint's redirect
// would hand the client secret to another host, or send it over plain
// http. A 3xx answer becomes an error instead.
func noRedirects(client *http.Client) *http.Client {
	if client == nil {
		return defaultHTTPClient()
	}
	c := *client
	c.CheckRedirect = useLastResponse
	return &c
}

func useLastResponse(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// defaultHTTPClient is the client used when OAuth2Config.HTTPClient is nil.
// It is shared so that all OAuth2 credentials share one connection pool.
var defaultHTTPClient = sync.OnceValue(func() *http.Client {
	return &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: useLastResponse,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 20 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          16,
		},
	}
})

// String returns a description of o without the client secret, the key or
// an assertion: how the client authenticates, and with what kind of key.
func (o *OAuth2) String() string {
	if o == nil {
		return "credential.OAuth2(nil)"
	}
	var auth string
	switch o.auth {
	case authSecret:
		auth = fmt.Sprintf("ClientSecret:%s", redacted)
	case authKey:
		auth = o.signer.String()
	case authAssertion:
		auth = "ClientAssertion:set"
	case authTLS:
		auth = "ClientAuth:tls_client_auth"
	}
	style := ""
	if o.auth == authSecret {
		style = fmt.Sprintf(" AuthStyle:%v", o.authStyle)
	}
	return fmt.Sprintf("credential.OAuth2{ClientID:%q %s TokenURL:%q%s EndpointParams:%v}",
		o.clientID, auth, o.displayURL, style, sortedKeys(o.params))
}

// Format implements [fmt.Formatter] so that every verb and flag, %#v and %+v
// included, prints the redacted String.
func (o *OAuth2) Format(f fmt.State, verb rune) { redact.Format(f, verb, o.String()) }

// GetToken fetches a token with the client credentials grant.
//
// scope is sent as the space-separated scope parameter, normalised with
// [strings.Fields]; an empty scope omits the parameter, leaving the server's
// default. With PrivateKey, every call signs a new assertion; with
// ClientAssertion, every call calls it once. An error answer of the server
// is returned as an error wrapping an [*OAuth2Error]; other failures wrap
// their cause (a ctx error, a network error, a malformed answer, the error
// of the signer or of ClientAssertion). Error messages name the token URL
// and the client ID, never the secret, an assertion or an issued token.
func (o *OAuth2) GetToken(ctx context.Context, scope string) (AccessToken, error) {
	form := o.form(scope)
	if o.auth != authSecret {
		return o.exchange(ctx, form, AuthStyleAuto)
	}
	style := o.authStyle
	if style == AuthStyleAuto {
		if l := AuthStyle(o.learned.Load()); l != AuthStyleAuto {
			style = l
		}
	}
	if style != AuthStyleAuto {
		return o.exchange(ctx, form, style)
	}
	tok, err := o.exchange(ctx, form, AuthStyleHeader)
	if err == nil {
		o.learned.Store(int32(AuthStyleHeader))
		return tok, nil
	}
	if !retryWithParams(err) {
		return AccessToken{}, err
	}
	tok, err = o.exchange(ctx, form, AuthStyleParams)
	if err != nil {
		return AccessToken{}, err
	}
	o.learned.Store(int32(AuthStyleParams))
	return tok, nil
}

// retryWithParams reports whether err, from a request with HTTP Basic, is an
// answer that may mean the server wants the client in form fields.
func retryWithParams(err error) bool {
	var oe *OAuth2Error
	if !errors.As(err, &oe) {
		return false
	}
	s := oe.StatusCode
	return s < 300 || (s >= 400 && s < 500 && s != http.StatusTooManyRequests)
}

// form returns the grant's form fields, the client's own excluded.
func (o *OAuth2) form(scope string) url.Values {
	// NewOAuth2 refused reserved names in EndpointParams.
	form := cloneValues(o.params)
	if form == nil {
		form = url.Values{}
	}
	form.Set("grant_type", "client_credentials")
	if s := strings.Join(strings.Fields(scope), " "); s != "" {
		form.Set("scope", s)
	}
	return form
}

// maxBody is how much of an answer is read.
const maxBody = 1 << 20

// exchange sends one token request. style says how a client secret goes
// (Header or Params); the other ways of client authentication ignore it.
func (o *OAuth2) exchange(ctx context.Context, form url.Values, style AuthStyle) (AccessToken, error) {
	sec := o.secrets
	if err := ctx.Err(); err != nil {
		// Nothing to sign for, nor to send: a signer may be a remote KMS.
		return AccessToken{}, o.wrap(err, sec)
	}
	switch o.auth {
	case authSecret:
		if style == AuthStyleParams {
			form = cloneValues(form)
			form.Set("client_id", o.clientID)
			form.Set("client_secret", o.secrets.secret)
		}
	case authKey, authAssertion:
		a, err := o.assertion(ctx)
		if err == nil && a == "" {
			err = errors.New("credential: OAuth2Config.ClientAssertion returned an empty assertion")
		}
		if err != nil {
			return AccessToken{}, o.wrap(&assertionError{err}, sec)
		}
		// Each assertion is new, so each request has its own scrubber.
		sec = sec.withSecret(a)
		form = cloneValues(form)
		form.Set("client_id", o.clientID)
		form.Set("client_assertion_type", assertionType)
		form.Set("client_assertion", a)
	case authTLS:
		form = cloneValues(form)
		form.Set("client_id", o.clientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return AccessToken{}, o.wrap(err, sec)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if o.auth == authSecret && style == AuthStyleHeader {
		// RFC 6749 section 2.3.1: both are form-urlencoded before Basic.
		req.SetBasicAuth(url.QueryEscape(o.clientID), url.QueryEscape(o.secrets.secret))
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return AccessToken{}, o.wrap(err, sec)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return AccessToken{}, o.wrap(fmt.Errorf("reading the answer (%s): %w", resp.Status, err), sec)
	}
	// Round(0): expiry is a wall-clock fact; see AccessToken.ExpiresOn.
	return o.handle(resp.StatusCode, resp.Header, body, time.Now().Round(0), sec)
}

// handle turns an answer of the token endpoint, received at now, into a
// token or an error for GetToken, scrubbed by sec (the client secret, and
// the request's assertion). body is at most maxBody+1 bytes; more means
// that the answer was cut.
func (o *OAuth2) handle(status int, header http.Header, body []byte, now time.Time, sec *scrubber) (AccessToken, error) {
	tok, err := parseTokenResponse(status, header, body, now, sec)
	if err != nil {
		return AccessToken{}, o.wrap(err, sec)
	}
	return tok, nil
}

// wrap adds the token URL and client ID to err; sec scrubs the message
// once more.
func (o *OAuth2) wrap(err error, sec *scrubber) error {
	return &requestError{tokenURL: o.displayURL, clientID: o.clientID, err: err, secrets: sec}
}
