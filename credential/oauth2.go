package credential

import (
	"context"
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
// Printing an OAuth2Config with any fmt verb or logging it with log/slog
// shows ClientSecret as REDACTED and only the names of EndpointParams.
type OAuth2Config struct {
	// ClientID identifies the client. Required.
	ClientID string

	// ClientSecret authenticates the client. Required. It never appears in
	// an error, a log or a printed value.
	ClientSecret string

	// TokenURL is the token endpoint. Required. It must be https, or http
	// to a loopback host only (127.0.0.0/8, ::1, "localhost"), since the
	// client secret travels in every request. It may have a query, which is
	// kept in requests and left out of error messages.
	TokenURL string

	// AuthStyle says how the client authenticates. The zero value is
	// AuthStyleAuto.
	AuthStyle AuthStyle

	// EndpointParams are extra form fields of every token request, such as
	// audience (Auth0) or resource (RFC 8707). nil adds none. They cannot
	// set grant_type, client_id, client_secret or scope: NewOAuth2 refuses
	// them. NewOAuth2 copies the map.
	EndpointParams url.Values

	// HTTPClient sends the token requests. nil means a shared client with
	// a 30 second timeout per request and bounded dial, TLS handshake and
	// response header waits. Redirects are never followed, whatever the
	// client's CheckRedirect: they would carry the client secret. Whatever the client, a request ends when the
	// context given to GetToken does.
	HTTPClient *http.Client
}

// String returns a description of c with ClientSecret redacted and only the
// names of EndpointParams, which may carry credentials of their own.
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
	b.WriteByte('}')
	return b.String()
}

// Format implements [fmt.Formatter] so that every verb and flag, %#v and %+v
// included, prints the redacted String.
func (c OAuth2Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String()) }

// MarshalJSON implements [json.Marshaler] with ClientSecret redacted and
// only the names of EndpointParams, like LogValue. A config therefore does
// not survive a JSON round trip: secrets are not meant to be stored this way.
func (c OAuth2Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ClientID       string   `json:"client_id"`
		ClientSecret   string   `json:"client_secret"`
		TokenURL       string   `json:"token_url"`
		AuthStyle      string   `json:"auth_style"`
		EndpointParams []string `json:"endpoint_params"`
	}{c.ClientID, redactedOrEmpty(c.ClientSecret), redactURL(c.TokenURL), c.AuthStyle.String(), sortedKeys(c.EndpointParams)})
}

// LogValue implements [slog.LogValuer] with ClientSecret redacted.
func (c OAuth2Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("client_id", c.ClientID),
		slog.String("client_secret", redactedOrEmpty(c.ClientSecret)),
		slog.String("token_url", redactURL(c.TokenURL)),
		slog.String("auth_style", c.AuthStyle.String()),
		slog.Any("endpoint_params", sortedKeys(c.EndpointParams)),
	)
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
// safe for concurrent use, and no fmt verb prints its secret.
type OAuth2 struct {
	clientID   string
	tokenURL   string // as configured, query included
	displayURL string // for messages: no user info, query or fragment
	authStyle  AuthStyle
	params     url.Values // EndpointParams, copied
	client     *http.Client

	// secrets holds the client secret and the forms in which a server
	// could echo it; a pointer, so that printing an OAuth2 value (not
	// through Format) shows an address rather than the secret.
	secrets *scrubber

	// learned is the AuthStyle that worked for AuthStyleAuto, or
	// AuthStyleAuto while none has.
	learned atomic.Int32
}

var _ TokenCredential = (*OAuth2)(nil)

// reservedParams are the form fields that EndpointParams cannot set.
var reservedParams = []string{"grant_type", "client_id", "client_secret", "scope"}

// NewOAuth2 returns an OAuth2 credential for cfg. It checks cfg and returns
// an error that names the bad field: ClientID, ClientSecret and TokenURL are
// required, TokenURL must be an absolute https URL (or http to a loopback
// host) without user info, AuthStyle must be one of the constants, and
// EndpointParams must not set grant_type, client_id, client_secret or scope.
func NewOAuth2(cfg OAuth2Config) (*OAuth2, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("credential: OAuth2Config.ClientID is required")
	}
	if cfg.ClientSecret == "" {
		return nil, errors.New("credential: OAuth2Config.ClientSecret is required")
	}
	if err := checkTokenURL(cfg.TokenURL); err != nil {
		return nil, err
	}
	switch cfg.AuthStyle {
	case AuthStyleAuto, AuthStyleHeader, AuthStyleParams:
	default:
		return nil, fmt.Errorf("credential: OAuth2Config.AuthStyle %d is not one of AuthStyleAuto, AuthStyleHeader, AuthStyleParams", int(cfg.AuthStyle))
	}
	for _, k := range reservedParams {
		if _, ok := cfg.EndpointParams[k]; ok {
			return nil, fmt.Errorf("credential: OAuth2Config.EndpointParams must not set %q: it is set by the grant (pass the scope to GetToken)", k)
		}
	}
	o := &OAuth2{
		clientID:   cfg.ClientID,
		tokenURL:   cfg.TokenURL,
		displayURL: redactURL(cfg.TokenURL),
		authStyle:  cfg.AuthStyle,
		params:     cloneValues(cfg.EndpointParams),
		client:     noRedirects(cfg.HTTPClient),
		secrets:    newScrubber(cfg.ClientID, cfg.ClientSecret),
	}
	return o, nil
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
		return errors.New("credential: OAuth2Config.TokenURL must not contain user info; set ClientID and ClientSecret instead")
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
		return fmt.Errorf("credential: OAuth2Config.TokenURL %q must be https: plain http is allowed to loopback hosts only, since the client secret is sent", redactURL(raw))
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

// String returns a description of o without the client secret.
func (o *OAuth2) String() string {
	if o == nil {
		return "credential.OAuth2(nil)"
	}
	return fmt.Sprintf("credential.OAuth2{ClientID:%q ClientSecret:%s TokenURL:%q AuthStyle:%v EndpointParams:%v}",
		o.clientID, redacted, o.displayURL, o.authStyle, sortedKeys(o.params))
}

// Format implements [fmt.Formatter] so that every verb and flag, %#v and %+v
// included, prints the redacted String.
func (o *OAuth2) Format(f fmt.State, verb rune) { redact.Format(f, verb, o.String()) }

// GetToken fetches a token with the client credentials grant.
//
// scope is sent as the space-separated scope parameter, normalised with
// [strings.Fields]; an empty scope omits the parameter, leaving the server's
// default. An error answer of the server is returned as an error wrapping an
// [*OAuth2Error]; other failures wrap their cause (a ctx error, a network
// error, a malformed answer). Error messages name the token URL and the
// client ID, never the secret or an issued token.
func (o *OAuth2) GetToken(ctx context.Context, scope string) (AccessToken, error) {
	form := o.form(scope)
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
	form := cloneValues(o.params)
	if form == nil {
		form = url.Values{}
	}
	for _, k := range reservedParams {
		form.Del(k)
	}
	form.Set("grant_type", "client_credentials")
	if s := strings.Join(strings.Fields(scope), " "); s != "" {
		form.Set("scope", s)
	}
	return form
}

// maxBody is how much of an answer is read.
const maxBody = 1 << 20

// exchange sends one token request with the given client authentication.
func (o *OAuth2) exchange(ctx context.Context, form url.Values, style AuthStyle) (AccessToken, error) {
	if style == AuthStyleParams {
		form = cloneValues(form)
		form.Set("client_id", o.clientID)
		form.Set("client_secret", o.secrets.secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return AccessToken{}, o.wrap(err, nil)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if style == AuthStyleHeader {
		// RFC 6749 section 2.3.1: both are form-urlencoded before Basic.
		req.SetBasicAuth(url.QueryEscape(o.clientID), url.QueryEscape(o.secrets.secret))
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return AccessToken{}, o.wrap(err, nil)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return AccessToken{}, o.wrap(fmt.Errorf("reading the answer (%s): %w", resp.Status, err), nil)
	}
	// Round(0): expiry is a wall-clock fact; see AccessToken.ExpiresOn.
	return o.handleResponse(resp.StatusCode, resp.Header, body, time.Now().Round(0))
}

// handleResponse turns an answer of the token endpoint into a token or an
// error for GetToken. body is at most maxBody+1 bytes; more means that the
// answer was cut.
func (o *OAuth2) handleResponse(status int, header http.Header, body []byte, now time.Time) (AccessToken, error) {
	tok, err := parseTokenResponse(status, header, body, now, o.secrets)
	if err != nil {
		return AccessToken{}, o.wrap(err, header)
	}
	return tok, nil
}

// wrap adds the token URL and client ID to err, and Retry-After from header.
func (o *OAuth2) wrap(err error, header http.Header) error {
	return &requestError{
		tokenURL:   o.displayURL,
		clientID:   o.clientID,
		retryAfter: retryAfter(header),
		err:        err,
		secrets:    o.secrets,
	}
}
