package hardening_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/transport"
)

// audit collects everything a program could show to a person or a log
// system: logs at debug level, errors in every form, printed values and
// recovered panics.
type audit struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (a *audit) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *audit) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

// logger logs at debug level as text and as JSON into the audit.
func (a *audit) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true}
	return slog.New(slog.NewMultiHandler(slog.NewTextHandler(a, opts), slog.NewJSONHandler(a, opts)))
}

// err records err as its Error(), %v, %+v, %#v and %q, and the same of
// every error in its chain.
func (a *audit) err(what string, err error) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		fmt.Fprintf(a, "%s: %s\n%v\n%+v\n%#v\n%q\n", what, e.Error(), e, e, e, e)
	}
	var oe *credential.OAuth2Error
	if errors.As(err, &oe) {
		fmt.Fprintf(a, "%s: OAuth2Error %+v %#v body %s\n", what, *oe, *oe, oe.Body)
	}
}

// print records v in the verbs that show a value, and through slog.
func (a *audit) print(log *slog.Logger, what string, v any) {
	fmt.Fprintf(a, "%s: %v | %+v | %#v\n", what, v, v, v)
	log.Debug("value", "what", what, "v", v)
	log.Info("value", slog.Any(what, v))
}

// printAll is print with every other verb too, for the types that promise
// that no verb shows their secret (they implement fmt.Formatter).
func (a *audit) printAll(log *slog.Logger, what string, v fmt.Formatter) {
	a.print(log, what, v)
	fmt.Fprintf(a, "%s: %s | %q | %x | %X | %d | %10.3v\n", what, v, v, v, v, v, v)
}

// send sends req through tr and records the error, or the response body:
// what an upstream answered may be shown too.
func (a *audit) send(tr http.RoundTripper, req *http.Request) *http.Response {
	resp, err := tr.RoundTrip(req)
	if err != nil {
		a.err("RoundTrip", err)
		return nil
	}
	_, _ = io.Copy(a, resp.Body)
	resp.Body.Close()
	return resp
}

// run runs f, recording a panic with its stack rather than dying of it.
func (a *audit) run(name string, f func()) {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(a, "panic in %s: %v | %+v | %#v\n%s\n", name, v, v, v, debug.Stack())
		}
	}()
	f()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fakeAzCred is an azidentity-style credential that hands out one token.
type fakeAzCred struct{ token string }

func (f fakeAzCred) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: f.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestNoSecretLeaks drives every flow (success, background refresh, 401
// resends, a 401 that cannot be resent, redirects to the same and to
// another host, plain http refused, a panicking credential, and every fault
// of the token endpoint) with a logger at debug level, records every error
// in every form, prints the transport, every credential, the OAuth2 config
// and tokens in every verb and through slog, and recovers any panic. None
// of it may contain the client secret (in any encoding a server could echo
// it in) or any token that was issued.
func TestNoSecretLeaks(t *testing.T) {
	// A secret with characters that every encoding changes.
	secret := "s3cr3t/+=&%42?" + randomHex(8)
	const clientID = "leak-client"
	staticToken := "static-" + randomHex(12)
	azSecret := "az-secret-" + randomHex(12)
	azToken := "az-token-" + randomHex(12)
	a := &audit{}
	log := a.logger()

	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{
		ClientID: clientID, ClientSecret: secret,
		LifetimeFunc: func(int64) time.Duration { return 2 * time.Second },
	})
	defer idp.Close()
	proxy := sandbox.NewProxy(idp, sandbox.ProxyConfig{})
	defer proxy.Close()
	faults := sandbox.Faults()

	closed, err := sandbox.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	var d net.Dialer
	tokenHTTP := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if refuse.Load() {
			addr = closed
		}
		return d.DialContext(ctx, network, addr)
	}}
	defer tokenHTTP.CloseIdleConnections()
	upstream := &http.Transport{}
	defer upstream.CloseIdleConnections()

	// Params style: the secret travels in the form, which the fault pages
	// echo; the Basic header is echoed in the other test of the pair below.
	for _, style := range []credential.AuthStyle{credential.AuthStyleParams, credential.AuthStyleHeader, credential.AuthStyleAuto} {
		cfg := credential.OAuth2Config{
			ClientID: clientID, ClientSecret: secret, TokenURL: idp.URL, AuthStyle: style,
			EndpointParams: url.Values{"audience": {"https://llm.example.com"}},
			HTTPClient:     &http.Client{Transport: tokenHTTP},
		}
		oauth, err := credential.NewOAuth2(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a.printAll(log, "OAuth2Config", cfg)
		a.printAll(log, "*OAuth2Config", &cfg)
		a.printAll(log, "OAuth2", oauth)

		newTransport := func(opts transport.Options) *transport.Transport {
			opts.Base, opts.Logger = upstream, log
			if opts.FetchTimeout == 0 {
				opts.FetchTimeout = 5 * time.Second
			}
			return transport.New(oauth, "api://llm/.default", &opts)
		}
		send := a.send
		get := func(tr http.RoundTripper) *http.Response {
			req, _ := http.NewRequest(http.MethodGet, proxy.URL+"/models", nil)
			return send(tr, req)
		}

		a.run("success and refresh", func() {
			tr := newTransport(transport.Options{})
			first := idp.Issued()
			get(tr)
			// Tokens live 2 s: the refresh starts after 1 s.
			for i := 0; i < 5000 && idp.Issued() < first+2; i++ {
				get(tr)
				time.Sleep(time.Millisecond)
			}
			if idp.Issued() < first+2 {
				t.Error("no background refresh happened")
			}
			tok, err := tr.Token(context.Background())
			if err != nil {
				a.err("Token", err)
			}
			a.printAll(log, "AccessToken", tok)
			a.printAll(log, "*AccessToken", &tok)
			b, _ := json.Marshal(tok)
			fmt.Fprintf(a, "AccessToken JSON: %s\n", b)
			a.printAll(log, "Transport", tr)
			a.print(log, "Stats", tr.Stats())
		})

		a.run("401 resend, 401 returned, 401 without a new token", func() {
			tr := newTransport(transport.Options{})
			get(tr)
			toks := idp.Tokens()
			idp.Revoke(toks[len(toks)-1])
			if resp := get(tr); resp == nil || resp.StatusCode != http.StatusOK {
				t.Error("the 401 was not healed")
			}
			toks = idp.Tokens()
			idp.Revoke(toks[len(toks)-1])
			req, _ := http.NewRequest(http.MethodPost, proxy.URL+"/chat/completions", io.NopCloser(strings.NewReader(`{"model":"m"}`)))
			if resp := send(tr, req); resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Error("an unreplayable body: want the 401 back")
			}
			idp.SetFault(faultNamed(faults, "500")) // the resend finds no token
			get(tr)
			idp.SetFault(nil)
		})

		a.run("redirects", func() {
			var otherAuth atomic.Value
			otherAuth.Store("")
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				otherAuth.Store(r.Header.Get("Authorization"))
				fmt.Fprint(w, "other host")
			}))
			defer other.Close()
			_, port, _ := net.SplitHostPort(other.Listener.Addr().String())
			redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				to := proxy.URL + "/models" // 127.0.0.1 as well: the same host
				if r.URL.Path == "/other" {
					to = "http://localhost:" + port + "/" // another host name
				}
				http.Redirect(w, r, to, http.StatusTemporaryRedirect)
			}))
			defer redir.Close()
			client := &http.Client{Transport: newTransport(transport.Options{})}
			for _, path := range []string{"/same", "/other"} {
				resp, err := client.Get(redir.URL + path)
				if err != nil {
					a.err("redirect", err)
					continue
				}
				_, _ = io.Copy(a, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("redirect %s: status %d", path, resp.StatusCode)
				}
			}
			fmt.Fprintf(a, "other host saw Authorization %q\n", otherAuth.Load())
			client.CloseIdleConnections()
		})

		a.run("plain http refused", func() {
			tr := newTransport(transport.Options{})
			req, _ := http.NewRequest(http.MethodGet, "http://llm.example.invalid/v1/models", strings.NewReader("body"))
			send(tr, req)
		})

		a.run("token endpoint faults", func() {
			refuse.Store(true)
			tokenHTTP.CloseIdleConnections() // a kept-alive connection would not be refused
			get(newTransport(transport.Options{}))
			refuse.Store(false)
			for _, f := range faults {
				idp.SetFault(f)
				var opts transport.Options // the others answer at once
				if f.Name == "stall" || f.Name == "trickle" {
					opts.FetchTimeout = 300 * time.Millisecond // they last until it ends the fetch
				}
				get(newTransport(opts))
			}
			idp.SetFault(nil)
		})
	}

	a.run("a panicking credential", func() {
		cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
			panic("credential blew up")
		})
		tr := transport.New(cred, "s", &transport.Options{Base: upstream, Logger: log})
		req, _ := http.NewRequest(http.MethodGet, proxy.URL+"/models", nil)
		if _, err := tr.RoundTrip(req); err != nil {
			a.err("panicking credential", err)
		}
	})
	a.run("a nil request", func() {
		tr := transport.New(credential.Static(staticToken), "s", &transport.Options{Base: upstream, Logger: log})
		_, err := tr.RoundTrip(nil)
		a.err("nil request", err)
	})

	a.run("other credentials", func() {
		static := credential.Static(staticToken)
		tr := transport.New(static, "s", &transport.Options{Base: upstream, Logger: log})
		req, _ := http.NewRequest(http.MethodGet, proxy.URL+"/models", nil)
		a.send(tr, req) // the proxy refuses a token it did not issue: 401, then the same token
		a.print(log, "Static", static)
		a.printAll(log, "Transport(Static)", tr)
		fn := credential.Func(func(ctx context.Context, s string) (credential.AccessToken, error) { return static.GetToken(ctx, s) })
		a.print(log, "Func", fn)

		az := credential.NewAzureAD(fakeAzCred{token: azToken})
		tr = transport.New(az, "https://cognitiveservices.azure.com/.default", &transport.Options{Base: upstream, Logger: log})
		req, _ = http.NewRequest(http.MethodGet, proxy.URL+"/models", nil)
		a.send(tr, req)
		a.printAll(log, "AzureAD(fake)", az)
		cs, err := azidentity.NewClientSecretCredential("00000000-0000-0000-0000-000000000000", clientID, azSecret, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.printAll(log, "AzureAD(ClientSecretCredential)", credential.NewAzureAD(cs))
		a.printAll(log, "AzureAD(default, not created)", credential.NewAzureAD(nil))
	})

	// Forbidden: the secrets in every form a server could echo them in,
	// and every token issued.
	forbidden := map[string]string{
		"client secret":                secret,
		"client secret, query-escaped": url.QueryEscape(secret),
		"client secret, path-escaped":  url.PathEscape(secret),
		"client secret, JSON":          strings.Trim(string(must(json.Marshal(secret))), `"`),
		"Basic credentials":            base64.StdEncoding.EncodeToString([]byte(clientID + ":" + secret)),
		"Basic credentials, RFC 6749":  base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(secret))),
		"Azure client secret":          azSecret,
		"static token":                 staticToken,
		"Azure token":                  azToken,
	}
	for i, tok := range idp.Tokens() {
		forbidden[fmt.Sprintf("issued token %d", i+1)] = tok
	}
	for _, f := range faults {
		if f.Token != "" {
			forbidden["token in the "+f.Name+" fault"] = f.Token
		}
	}
	out := a.String()
	for what, s := range forbidden {
		if i := strings.Index(out, s); i >= 0 {
			t.Errorf("%s found in the output: ...%s...", what, out[max(0, i-200):min(len(out), i+len(s)+50)])
		}
	}

	// The audit saw what it was meant to see.
	for _, want := range []string{
		"token fetched", "resending after 401", "401 not resent", "token fetch failed",
		"connection refused", "503 Service Unavailable", "429 Too Many Requests", "500 Internal Server Error",
		"text/html", "invalid JSON", "more than 1048576 bytes", "deadline exceeded",
		"refusing to send a bearer token over plain http", "credential panicked", "panic in a nil request",
		"other host saw Authorization \"\"", "REDACTED", "ClientSecretCredential",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the audit never saw %q", want)
		}
	}
	if testing.Verbose() {
		t.Logf("audited %d bytes, %d issued tokens, %d forbidden strings", len(out), len(idp.Tokens()), len(forbidden))
	}
}

func faultNamed(faults []sandbox.Fault, name string) sandbox.Fault {
	for _, f := range faults {
		if f.Name == name {
			return f
		}
	}
	panic("no fault " + name)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
