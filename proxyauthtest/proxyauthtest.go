// Package proxyauthtest provides fakes for testing code that uses proxyauth
// without a network: an OAuth2 token endpoint, an OpenAI-compatible upstream
// that accepts only that endpoint's tokens, and a scripted credential.
//
// The two HTTP fakes are served by one [httpmock.MockTransport] on hosts
// under the reserved .test domain ([TokenURL], [BaseURL]), so that nothing
// leaves the process:
//
//	fake := proxyauthtest.New(nil)
//	cred, err := credential.NewOAuth2(fake.OAuth2Config())
//	...
//	client := transport.Wrap(fake.Client(), cred, "llm", nil)
//	// client reaches fake.LLM at proxyauthtest.BaseURL.
//
// Issued tokens are random and are never logged or printed by this package.
package proxyauthtest

import (
	"net/http"
	"regexp"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
)

// The fakes' fixed addresses and client credentials. The .test top-level
// domain is reserved (RFC 2606): no real host has these names.
const (
	// TokenURL is the token endpoint of [TokenEndpoint].
	TokenURL = "https://" + idpHost + "/oauth2/token"
	// BaseURL is the base URL of [Upstream] for OpenAI clients.
	BaseURL = "https://" + llmHost + "/v1"
	// ClientID and ClientSecret are the only client credentials that
	// [TokenEndpoint] accepts.
	ClientID     = "proxyauthtest-client"
	ClientSecret = "proxyauthtest-secret"
)

const (
	idpHost = "idp.proxyauth.test"
	llmHost = "llm.proxyauth.test"
)

// defaultLifetime is the lifetime of issued tokens when Options.Lifetime is
// zero.
const defaultLifetime = time.Hour

// Options configure a [Fake]. Pass nil to [New] to accept the defaults.
type Options struct {
	// Now is the fakes' clock: it decides when a token expires and is
	// put in the "created" fields of answers. If nil, time.Now is used.
	// The credential and the transport keep using the real clock, so
	// moving Now past a token's expiry makes the upstream refuse a token
	// that the client still holds, as a server whose clock runs ahead
	// would; the transport recovers from that with its 401 resend.
	Now func() time.Time

	// Lifetime is the lifetime of the tokens issued until
	// [TokenEndpoint.SetLifetime] changes it, rounded as that says. Zero
	// means one hour.
	Lifetime time.Duration
}

// Fake is a token endpoint and an upstream that trusts it, served by one
// [httpmock.MockTransport]. Create it with [New]; it needs no Close.
type Fake struct {
	// IdP is the token endpoint at TokenURL.
	IdP *TokenEndpoint
	// LLM is the OpenAI-compatible upstream at BaseURL.
	LLM *Upstream

	mock   *httpmock.MockTransport
	client *http.Client
}

// New returns a Fake. Pass nil opts to accept the defaults.
func New(opts *Options) *Fake {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lifetime == 0 {
		o.Lifetime = defaultLifetime
	}
	idp := newTokenEndpoint(o.Now, o.Lifetime)
	f := &Fake{
		IdP:  idp,
		LLM:  &Upstream{idp: idp, now: o.Now},
		mock: httpmock.NewMockTransport(),
	}
	f.client = &http.Client{Transport: f.mock}
	route(f.mock, idpHost, idp.respond)
	route(f.mock, llmHost, f.LLM.respond)
	return f
}

// methods are those the fakes answer; a request with another method gets
// httpmock's "no responder" error.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// route sends every https request to host, whatever its path, to r, which
// answers unknown paths itself (404) and checks tokens before paths, as a
// real server does.
func route(m *httpmock.MockTransport, host string, r httpmock.Responder) {
	rx := regexp.MustCompile(`^https://` + regexp.QuoteMeta(host) + `(:443)?(/|$)`)
	for _, method := range methods {
		m.RegisterRegexpResponder(method, rx, r)
	}
}

// Transport returns the mock transport that serves the fakes: the Base for
// [github.com/proxyauth/proxyauth/transport.New]. More responders, for other
// hosts, can be registered on it; its Reset removes the fakes too. A
// request to a host that nothing answers fails with httpmock's "no
// responder found" error, so nothing reaches the network.
func (f *Fake) Transport() *httpmock.MockTransport { return f.mock }

// Client returns an [http.Client] over [Fake.Transport], with no timeout:
// the HTTPClient of [Fake.OAuth2Config] and the client to give to
// [github.com/proxyauth/proxyauth/transport.Wrap]. Every call returns the
// same client; Wrap and [credential.NewOAuth2] copy it rather than change
// it.
func (f *Fake) Client() *http.Client { return f.client }

// OAuth2Config returns a config with which [credential.NewOAuth2] gets
// tokens from f.IdP: [ClientID], [ClientSecret], [TokenURL], and
// [Fake.Client] as the HTTPClient. AuthStyle is the zero value,
// AuthStyleAuto; set it to try the others.
func (f *Fake) OAuth2Config() credential.OAuth2Config {
	return credential.OAuth2Config{
		ClientID:     ClientID,
		ClientSecret: ClientSecret,
		TokenURL:     TokenURL,
		HTTPClient:   f.client,
	}
}
