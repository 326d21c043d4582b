package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/transport"
)

// Scope is the scope every peer asks for.
const Scope = "api://bench/.default"

// Fetch fetches one token, without caching.
type Fetch func(ctx context.Context) (*oauth2.Token, error)

// Source is where a peer gets its tokens: a client-credentials token
// endpoint, or, for the cached-path benchmarks, a function.
type Source struct {
	// Endpoint, if set, is the token endpoint. Each peer fetches from it
	// as its users would: proxyauth with credential.NewOAuth2, x/oauth2
	// and azcore with clientcredentials.Config.Token. Neither caches.
	Endpoint *Endpoint
	// Static is used when Endpoint is nil.
	Static Fetch
}

// Endpoint is a client-credentials token endpoint.
type Endpoint struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	HTTPClient   *http.Client // sends the token requests
}

// fetch returns a raw fetch with clientcredentials.Config.Token.
func (s Source) fetch() Fetch {
	if s.Endpoint == nil {
		return s.Static
	}
	ep := *s.Endpoint
	cc := clientcredentials.Config{
		ClientID:     ep.ClientID,
		ClientSecret: ep.ClientSecret,
		TokenURL:     ep.TokenURL,
		Scopes:       []string{Scope},
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	return func(ctx context.Context) (*oauth2.Token, error) {
		return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, ep.HTTPClient))
	}
}

// proxyauthCredential returns credential.NewOAuth2 for an endpoint, else
// a credential.Func over Static.
func (s Source) proxyauthCredential() (credential.TokenCredential, error) {
	if ep := s.Endpoint; ep != nil {
		return credential.NewOAuth2(credential.OAuth2Config{
			ClientID:     ep.ClientID,
			ClientSecret: ep.ClientSecret,
			TokenURL:     ep.TokenURL,
			AuthStyle:    credential.AuthStyleHeader,
			HTTPClient:   ep.HTTPClient,
		})
	}
	return credential.Func(func(ctx context.Context, _ string) (credential.AccessToken, error) {
		t, err := s.Static(ctx)
		if err != nil {
			return credential.AccessToken{}, err
		}
		return credential.AccessToken{Token: t.AccessToken, ExpiresOn: t.Expiry}, nil
	}), nil
}

// Peer is an auth layer under comparison, presented as an
// [http.RoundTripper] so that every peer is driven the same way.
type Peer struct {
	Name string
	// Config says how the peer is configured, for the tables; %v is the
	// early-refresh margin.
	Config string
	// New returns the peer over base, taking tokens from src and
	// refreshing them margin before they expire.
	New func(src Source, base http.RoundTripper, margin time.Duration) (http.RoundTripper, error)
}

// Configuration of a peer for margin, for the tables.
func (p Peer) Configuration(margin time.Duration) string {
	return fmt.Sprintf(p.Config, margin)
}

// Peers returns the three auth layers the scenarios compare.
func Peers() []Peer { return []Peer{ProxyAuth, XOAuth2, Azcore} }

// ProxyAuth is transport.New over credential.NewOAuth2.
var ProxyAuth = Peer{
	Name: "proxyauth",
	Config: "`transport.New(cred, scope, &transport.Options{Base: base, RefreshBefore: %v})`, " +
		"cred `credential.NewOAuth2(credential.OAuth2Config{..., AuthStyle: credential.AuthStyleHeader})`; resend on 401 on (the default)",
	New: func(src Source, base http.RoundTripper, margin time.Duration) (http.RoundTripper, error) {
		cred, err := src.proxyauthCredential()
		if err != nil {
			return nil, err
		}
		return transport.New(cred, Scope, &transport.Options{Base: base, RefreshBefore: margin}), nil
	},
}

// XOAuth2 is oauth2.Transport over oauth2.ReuseTokenSourceWithExpiry, the
// cache that clientcredentials.Config.TokenSource uses, with the margin as
// its early expiry.
var XOAuth2 = Peer{
	Name: "x/oauth2",
	Config: "`&oauth2.Transport{Source: oauth2.ReuseTokenSourceWithExpiry(nil, src, %v), Base: base}`, " +
		"src calling `clientcredentials.Config{..., AuthStyle: oauth2.AuthStyleInHeader}.Token`",
	New: func(src Source, base http.RoundTripper, margin time.Duration) (http.RoundTripper, error) {
		fetch := src.fetch()
		ts := tokenSourceFunc(func() (*oauth2.Token, error) { return fetch(context.Background()) })
		return &oauth2.Transport{Source: oauth2.ReuseTokenSourceWithExpiry(nil, ts, margin), Base: base}, nil
	},
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// Azcore is an azcore pipeline with runtime.NewBearerTokenPolicy, as
// openai-go/v3/azure configures it (retries off, the bearer policy per
// retry, insecure http allowed for loopback), at its cheapest: built once
// rather than per request, telemetry off, over base as its
// policy.Transporter.
var Azcore = Peer{
	Name: "azcore",
	Config: "`runtime.NewPipeline(..., &policy.ClientOptions{Retry: {MaxRetries: -1}, Telemetry: {Disabled: true}, PerRetryPolicies: {runtime.NewBearerTokenPolicy(cred, scopes, &{InsecureAllowCredentialWithHTTP: true})}, Transport: base})`, " +
		"built once; the credential calls `clientcredentials.Config{..., AuthStyle: oauth2.AuthStyleInHeader}.Token` and sets `RefreshOn = ExpiresOn - %v`; each request goes in with " +
		"`runtime.NewRequestFromRequest`, `runtime.SkipBodyDownload`, `Pipeline.Do` (the retry policy clones it before the bearer policy sets the header)",
	New: func(src Source, base http.RoundTripper, margin time.Duration) (http.RoundTripper, error) {
		pl := runtime.NewPipeline("bench", "v0.0.0", runtime.PipelineOptions{}, &policy.ClientOptions{
			Retry:            policy.RetryOptions{MaxRetries: -1},
			Telemetry:        policy.TelemetryOptions{Disabled: true},
			PerRetryPolicies: []policy.Policy{newAzcoreBearerPolicy(src.fetch(), margin)},
			Transport:        transporter{base},
		})
		return azcoreRoundTripper{pl}, nil
	},
}

// newAzcoreBearerPolicy returns the bearer-token policy over fetch, with
// RefreshOn set margin before expiry.
func newAzcoreBearerPolicy(fetch Fetch, margin time.Duration) *runtime.BearerTokenPolicy {
	return runtime.NewBearerTokenPolicy(azcoreCredential{fetch, margin}, []string{Scope},
		&policy.BearerTokenOptions{InsecureAllowCredentialWithHTTP: true})
}

// azcoreCredential is an azcore.TokenCredential over fetch. RefreshOn gives
// azcore the same early-refresh margin as the other peers: azcore's own
// default is a fixed 5 minutes.
type azcoreCredential struct {
	fetch  Fetch
	margin time.Duration
}

func (c azcoreCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	t, err := c.fetch(ctx)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: t.AccessToken, ExpiresOn: t.Expiry, RefreshOn: t.Expiry.Add(-c.margin)}, nil
}

// transporter presents an http.RoundTripper as a policy.Transporter.
type transporter struct{ rt http.RoundTripper }

func (t transporter) Do(req *http.Request) (*http.Response, error) { return t.rt.RoundTrip(req) }

// azcoreRoundTripper sends requests through an azcore pipeline. The body
// download policy is skipped, as an SSE stream requires.
type azcoreRoundTripper struct{ pl runtime.Pipeline }

func (a azcoreRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	req, err := runtime.NewRequestFromRequest(r)
	if err != nil {
		return nil, err
	}
	runtime.SkipBodyDownload(req)
	return a.pl.Do(req)
}

// AzcorePerRequest reproduces what openai-go/v3/azure.WithTokenCredential
// does for each request: one bearer policy shared by all requests, a new
// pipeline per request whose last policy calls the next RoundTripper.
func AzcorePerRequest(src Source, base http.RoundTripper, margin time.Duration) http.RoundTripper {
	return &azcorePerRequest{bearer: newAzcoreBearerPolicy(src.fetch(), margin), base: base}
}

type azcorePerRequest struct {
	bearer *runtime.BearerTokenPolicy
	base   http.RoundTripper
}

func (a *azcorePerRequest) RoundTrip(r *http.Request) (*http.Response, error) {
	retry := policy.RetryOptions{MaxRetries: -1}
	pl := runtime.NewPipeline("azopenai-extensions", "v0.0.0", runtime.PipelineOptions{}, &policy.ClientOptions{
		Retry:            retry,
		PerRetryPolicies: []policy.Policy{a.bearer, nextPolicy{a.base}},
	})
	r = ownHeaders(r).WithContext(policy.WithRetryOptions(r.Context(), retry))
	req, err := runtime.NewRequestFromRequest(r)
	if err != nil {
		return nil, err
	}
	return pl.Do(req)
}

// ownHeaders returns a shallow copy of r with its own header map. azcore's
// telemetry policy sets User-Agent on the request it is given, before the
// retry policy clones it; a RoundTripper must not modify its caller's
// request, and a reused request would grow a User-Agent per call.
func ownHeaders(r *http.Request) *http.Request {
	c := new(http.Request)
	*c = *r
	c.Header = make(http.Header, len(r.Header)+2)
	for k, v := range r.Header {
		c.Header[k] = v
	}
	return c
}

// nextPolicy ends a pipeline by handing the request to an http.RoundTripper,
// as openai-go's policyAdapter hands it to the next middleware.
type nextPolicy struct{ rt http.RoundTripper }

func (p nextPolicy) Do(req *policy.Request) (*http.Response, error) { return p.rt.RoundTrip(req.Raw()) }
