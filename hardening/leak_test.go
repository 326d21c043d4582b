package hardening_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/credential/azuread"
	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/aztest"
	"github.com/proxyauth/proxyauth/internal/testutil/testkey"
	"github.com/proxyauth/proxyauth/transport"
)

// audit collects everything a program could show to a person or a log
// system: logs at debug level, errors in every form, printed values and
// recovered panics.
type audit struct {
	testutil.Buffer
}

// logger logs at debug level as text and as JSON into the audit, and
// records every record in logs, where the test finds them by event.
func (a *audit) logger(logs *testutil.Logs) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true}
	return slog.New(slog.NewMultiHandler(slog.NewTextHandler(a, opts), slog.NewJSONHandler(a, opts), logs))
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

// printed is the message of the records that print logs: the audit's own,
// not the library's.
const printed = "value"

// print records v in the verbs that show a value, and through slog.
func (a *audit) print(log *slog.Logger, what string, v any) {
	fmt.Fprintf(a, "%s: %v | %+v | %#v\n", what, v, v, v)
	log.Debug(printed, "what", what, "v", v)
	log.Info(printed, slog.Any(what, v))
}

// printAll is print with every other verb too, for the types that promise
// that no verb shows their secret (they implement fmt.Formatter).
func (a *audit) printAll(log *slog.Logger, what string, v fmt.Formatter) {
	a.print(log, what, v)
	fmt.Fprintf(a, "%s: %s | %q | %x | %X | %d | %10.3v\n", what, v, v, v, v, v, v)
}

// send sends req through tr and records the error, or the response body:
// what an upstream answered may be shown too.
func (a *audit) send(tr http.RoundTripper, req *http.Request) (*http.Response, error) {
	resp, err := tr.RoundTrip(req)
	if err != nil {
		a.err("RoundTrip", err)
		return nil, err
	}
	_, _ = io.Copy(a, resp.Body)
	resp.Body.Close()
	return resp, nil
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

// TestNoSecretLeaks drives every flow (success, background refresh, 401
// resends, a 401 that cannot be resent, a 401 without a new token, a new
// token refused too, redirects to the same and to another host, plain http
// refused, a panicking credential, and every fault of the token endpoint)
// with a logger at debug level, for a client secret and for client
// authentication without one (private_key_jwt with an RSA key and with an
// ECDSA key behind a signer that hides its type, a ClientAssertion
// function, a rotated assertion file, a missing one), records every error
// in every form, prints the transport, every credential, the OAuth2 configs
// and tokens in every verb, through slog and as JSON, and recovers any
// panic. None of it may contain the client secret (in any encoding a server
// could echo it in), an assertion or its signature, a private key, or any
// token that was issued. Each flow checks that it took the path it is meant to
// audit, by its outcome and by the "event" attribute of the log records.
func TestNoSecretLeaks(t *testing.T) {
	// A secret with characters that every encoding changes.
	secret := "s3cr3t/+=&%42?" + randomHex(8)
	const clientID = "leak-client"
	staticToken := "static-" + randomHex(12)
	azSecret := "az-secret-" + randomHex(12)
	azToken := "az-token-" + randomHex(12)
	a := &audit{}
	logs, _ := testutil.NewLogs()
	log := a.logger(logs)

	// Tokens of the refresh flow live 2 s, so that it meets a background
	// refresh. The other flows get tokens that live an hour from a server
	// of their own, so that no refresh can change which token they hold.
	shortIdp := sandbox.NewTokenServer(sandbox.TokenServerConfig{
		ClientID: clientID, ClientSecret: secret,
		LifetimeFunc: func(int64) time.Duration { return 2 * time.Second },
	})
	defer shortIdp.Close()
	shortProxy := sandbox.NewProxy(shortIdp, sandbox.ProxyConfig{})
	defer shortProxy.Close()
	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{ClientID: clientID, ClientSecret: secret})
	defer idp.Close()
	proxy := sandbox.NewProxy(idp, sandbox.ProxyConfig{})
	defer proxy.Close()
	// refusing refuses every token, as a server with the wrong audience
	// configured does.
	refusing := sandbox.NewProxy(idp, sandbox.ProxyConfig{Fail: func(int64) int { return http.StatusUnauthorized }})
	defer refusing.Close()
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

	// events counts the records of each event so far.
	events := func() map[string]int {
		n := map[string]int{}
		for _, r := range logs.Records() {
			n[r.Event()]++
		}
		return n
	}
	// logged fails the test unless the records since before hold exactly
	// want more of each event named in want.
	logged := func(flow string, before map[string]int, want map[string]int) {
		t.Helper()
		now := events()
		for ev, n := range want {
			if got := now[ev] - before[ev]; got != n {
				t.Errorf("%s: %d %q records; want %d", flow, got, ev, n)
			}
		}
	}

	// Params style: the secret travels in the form, which the fault pages
	// echo; the Basic header is echoed in the other test of the pair below.
	for _, style := range []credential.AuthStyle{credential.AuthStyleParams, credential.AuthStyleHeader, credential.AuthStyleAuto} {
		newOAuth2 := func(tokenURL string) *credential.OAuth2 {
			cfg := credential.OAuth2Config{
				ClientID: clientID, ClientSecret: secret, TokenURL: tokenURL, AuthStyle: style,
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
			return oauth
		}
		oauth, shortOAuth := newOAuth2(idp.URL), newOAuth2(shortIdp.URL)

		// Only the stall and the trickle last until the fetch timeout ends
		// them; the other fetches are answered at once and get a timeout
		// that no loaded machine reaches.
		newTransport := func(cred credential.TokenCredential, fetchTimeout time.Duration) *transport.Transport {
			if fetchTimeout == 0 {
				fetchTimeout = testutil.HangTimeout
			}
			return transport.New(cred, "api://llm/.default", &transport.Options{Base: upstream, Logger: log, FetchTimeout: fetchTimeout})
		}
		send := a.send
		getFrom := func(tr http.RoundTripper, base string) (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodGet, base+"/models", nil)
			return send(tr, req)
		}
		get := func(tr http.RoundTripper) (*http.Response, error) { return getFrom(tr, proxy.URL) }
		status := func(resp *http.Response, err error) int {
			if err != nil {
				return 0
			}
			return resp.StatusCode
		}

		a.run("success and refresh", func() {
			tr := newTransport(shortOAuth, 0)
			before := events()
			if st := status(getFrom(tr, shortProxy.URL)); st != http.StatusOK {
				t.Errorf("first request: status %d; want 200", st)
			}
			// Tokens live 2 s: the refresh starts after 1 s. Requests go
			// on until one of them has started it and its token is in.
			testutil.Eventually(t, "a background refresh and its token", func() bool {
				if events()["refresh_started"] > before["refresh_started"] && events()["token_fetched"] >= before["token_fetched"]+2 {
					return true
				}
				getFrom(tr, shortProxy.URL)
				return false
			})
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
			tr := newTransport(oauth, 0)
			before := events()
			if st := status(get(tr)); st != http.StatusOK {
				t.Errorf("first request: status %d; want 200", st)
			}
			idp.RevokeAll()
			if st := status(get(tr)); st != http.StatusOK {
				t.Errorf("after a revocation: status %d; want 200 from the resend", st)
			}
			logged("a healed 401", before, map[string]int{"token_fetched": 2, "retry": 1})

			idp.RevokeAll()
			before = events()
			req, _ := http.NewRequest(http.MethodPost, proxy.URL+"/chat/completions", io.NopCloser(strings.NewReader(`{"model":"m"}`)))
			if st := status(send(tr, req)); st != http.StatusUnauthorized {
				t.Errorf("an unreplayable body: status %d; want the 401 back", st)
			}
			// The refused token was dropped all the same: the next
			// request fetches a new one and needs no resend.
			if st := status(get(tr)); st != http.StatusOK {
				t.Errorf("after the unreplayable 401: status %d; want 200", st)
			}
			logged("an unreplayable 401", before, map[string]int{"token_fetched": 1, "retry": 0})

			idp.RevokeAll()
			before = events()
			idp.SetFault(faultNamed(faults, "500")) // the resend finds no token
			if st := status(get(tr)); st != http.StatusUnauthorized {
				t.Errorf("no new token: status %d; want the 401 back", st)
			}
			idp.SetFault(nil)
			logged("a 401 without a new token", before, map[string]int{"fetch_failed": 1, "retry_skipped": 1, "retry": 0})

			// A server that refuses the new token too: its 401 comes back
			// and starts a hold.
			tr = newTransport(oauth, 0)
			before = events()
			if st := status(getFrom(tr, refusing.URL)); st != http.StatusUnauthorized {
				t.Errorf("refusing server: status %d; want 401", st)
			}
			logged("a new token refused too", before, map[string]int{"token_fetched": 2, "retry": 1, "refusal_hold": 1})
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
			client := &http.Client{Transport: newTransport(oauth, 0)}
			for _, path := range []string{"/same", "/other"} {
				resp, err := client.Get(redir.URL + path)
				if err != nil {
					a.err("redirect", err)
					t.Errorf("redirect %s: %v", path, err)
					continue
				}
				_, _ = io.Copy(a, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("redirect %s: status %d", path, resp.StatusCode)
				}
			}
			fmt.Fprintf(a, "other host saw Authorization %q\n", otherAuth.Load())
			if got := otherAuth.Load(); got != "" {
				t.Error("the other host got an Authorization header")
			}
			client.CloseIdleConnections()
		})

		a.run("plain http refused", func() {
			tr := newTransport(oauth, 0)
			req, _ := http.NewRequest(http.MethodGet, "http://llm.example.invalid/v1/models", strings.NewReader("body"))
			if _, err := send(tr, req); !errors.Is(err, transport.ErrInsecureHTTP) {
				t.Errorf("plain http: err = %v; want ErrInsecureHTTP", err)
			}
		})

		a.run("token endpoint faults", func() {
			before := events()
			refuse.Store(true)
			tokenHTTP.CloseIdleConnections() // a kept-alive connection would not be refused
			if _, err := get(newTransport(oauth, 0)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("refused connection: err = %v; want ECONNREFUSED", err)
			}
			refuse.Store(false)
			for _, f := range faults {
				idp.SetFault(f)
				var timeout time.Duration
				if f.Name == "stall" || f.Name == "trickle" {
					timeout = 300 * time.Millisecond // they never answer: the timeout always ends them
				}
				_, err := get(newTransport(oauth, timeout))
				var oe *credential.OAuth2Error
				switch {
				case err == nil:
					t.Errorf("fault %s: a response; want a token error with nothing sent", f.Name)
				case timeout != 0 && !errors.Is(err, context.DeadlineExceeded):
					t.Errorf("fault %s: err = %v; want the fetch timeout", f.Name, err)
				case strings.HasPrefix(f.Name, "5") || f.Name == "429":
					if !errors.As(err, &oe) || strconv.Itoa(oe.StatusCode) != f.Name[:3] {
						t.Errorf("fault %s: err = %v; want an OAuth2Error with its status", f.Name, err)
					}
				}
			}
			idp.SetFault(nil)
			logged("the faults", before, map[string]int{"fetch_failed": len(faults) + 1, "token_fetched": 0})
		})
	}

	// Client authentication without a secret: private_key_jwt with an RSA
	// key and with an ECDSA key behind a signer that hides its type, a
	// ClientAssertion function and an assertion file. Each assertion is a
	// secret for its few minutes; the fault pages echo it.
	assertions := newAssertionFront(t, clientID)
	defer assertions.Close()
	assertProxy := sandbox.NewProxy(assertions.idp, sandbox.ProxyConfig{})
	defer assertProxy.Close()
	rsaKey := must(rsa.GenerateKey(rand.Reader, 2048))
	ecKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	workloadKey := must(rsa.GenerateKey(rand.Reader, 2048))
	assertions.trust(rsaKey.Public(), ecKey.Public(), workloadKey.Public())
	assertionFile := filepath.Join(t.TempDir(), "token")
	var fileContents []string
	writeAssertion := func() string {
		s := signAssertion(t, workloadKey, clientID, assertions.URL)
		fileContents = append(fileContents, s)
		if err := os.WriteFile(assertionFile, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return s
	}
	fromFile := credential.AssertionFromFile(assertionFile)
	secretless := []struct {
		name string
		cfg  credential.OAuth2Config
	}{
		{"RSA key", credential.OAuth2Config{PrivateKey: rsaKey, KeyID: "rsa-1"}},
		{"hidden ECDSA key, certificate", credential.OAuth2Config{PrivateKey: testkey.Hide(ecKey), Certificate: testkey.SelfSigned(t, ecKey), AssertionAudience: assertions.URL}},
		{"ClientAssertion", credential.OAuth2Config{ClientAssertion: func(context.Context) (string, error) {
			return signAssertion(t, workloadKey, clientID, assertions.URL), nil
		}}},
		{"AssertionFromFile", credential.OAuth2Config{ClientAssertion: func(ctx context.Context) (string, error) {
			writeAssertion() // the platform rotates the file
			return fromFile(ctx)
		}}},
	}
	for _, sl := range secretless {
		cfg := sl.cfg
		cfg.ClientID, cfg.TokenURL, cfg.HTTPClient = clientID, assertions.URL+"/oauth2/token", &http.Client{Transport: tokenHTTP}
		cfg.EndpointParams = url.Values{"audience": {"https://llm.example.com"}}
		oauth, err := credential.NewOAuth2(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a.printAll(log, sl.name+" OAuth2Config", cfg)
		a.printAll(log, sl.name+" *OAuth2Config", &cfg)
		a.printAll(log, sl.name+" OAuth2", oauth)
		b, _ := json.Marshal(cfg)
		fmt.Fprintf(a, "%s OAuth2Config JSON: %s\n", sl.name, b)
		newTransport := func(timeout time.Duration) *transport.Transport {
			if timeout == 0 {
				timeout = testutil.HangTimeout
			}
			return transport.New(oauth, "api://llm/.default", &transport.Options{Base: upstream, Logger: log, FetchTimeout: timeout})
		}
		get := func(tr http.RoundTripper) (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodGet, assertProxy.URL+"/models", nil)
			return a.send(tr, req)
		}

		a.run(sl.name+": success and a 401 resend", func() {
			tr := newTransport(0)
			before := events()
			if resp, err := get(tr); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s: first request: %v; want 200", sl.name, err)
			}
			assertions.idp.RevokeAll()
			if resp, err := get(tr); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s: after a revocation: %v; want 200 from the resend", sl.name, err)
			}
			logged(sl.name+": a healed 401", before, map[string]int{"token_fetched": 2, "retry": 1})
			tok, err := tr.Token(context.Background())
			if err != nil {
				a.err("Token", err)
			}
			a.printAll(log, sl.name+" AccessToken", tok)
		})

		a.run(sl.name+": token endpoint faults", func() {
			before := events()
			for _, f := range faults {
				assertions.setFault(f)
				var timeout time.Duration
				if f.Name == "stall" || f.Name == "trickle" {
					timeout = 300 * time.Millisecond
				}
				_, err := get(newTransport(timeout))
				var oe *credential.OAuth2Error
				switch {
				case err == nil:
					t.Errorf("%s: fault %s: a response; want a token error", sl.name, f.Name)
				case timeout != 0 && !errors.Is(err, context.DeadlineExceeded):
					t.Errorf("%s: fault %s: err = %v; want the fetch timeout", sl.name, f.Name, err)
				case strings.HasPrefix(f.Name, "5") || f.Name == "429":
					if !errors.As(err, &oe) || strconv.Itoa(oe.StatusCode) != f.Name[:3] {
						t.Errorf("%s: fault %s: err = %v; want an OAuth2Error with its status", sl.name, f.Name, err)
					}
				}
			}
			assertions.setFault(sandbox.Fault{})
			logged(sl.name+": the faults", before, map[string]int{"fetch_failed": len(faults), "token_fetched": 0})
		})

		a.run(sl.name+": an assertion the server refuses, echoed", func() {
			assertions.refuseAll.Store(true)
			defer assertions.refuseAll.Store(false)
			_, err := get(newTransport(0))
			var oe *credential.OAuth2Error
			if !errors.As(err, &oe) || oe.Code != "invalid_client" {
				t.Errorf("%s: refused assertion: err = %v; want invalid_client", sl.name, err)
			}
		})
	}
	a.run("a missing assertion file", func() {
		oauth, err := credential.NewOAuth2(credential.OAuth2Config{
			ClientID: clientID, TokenURL: assertions.URL + "/oauth2/token", HTTPClient: &http.Client{Transport: tokenHTTP},
			ClientAssertion: credential.AssertionFromFile(assertionFile + ".missing"),
		})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, assertProxy.URL+"/models", nil)
		tr := transport.New(oauth, "s", &transport.Options{Base: upstream, Logger: log})
		if _, err := a.send(tr, req); err == nil || !strings.Contains(err.Error(), assertionFile+".missing") {
			t.Errorf("a missing assertion file: err = %v; want one naming the path", err)
		}
	})

	a.run("a panicking credential", func() {
		cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
			panic("credential blew up")
		})
		tr := transport.New(cred, "s", &transport.Options{Base: upstream, Logger: log})
		req, _ := http.NewRequest(http.MethodGet, proxy.URL+"/models", nil)
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, transport.ErrCredentialPanic) {
			t.Errorf("panicking credential: err = %v; want ErrCredentialPanic", err)
		}
		if err != nil {
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

		az := azuread.New(aztest.Static(azcore.AccessToken{Token: azToken, ExpiresOn: time.Now().Add(time.Hour)}))
		tr = transport.New(az, "https://cognitiveservices.azure.com/.default", &transport.Options{Base: upstream, Logger: log})
		req, _ = http.NewRequest(http.MethodGet, proxy.URL+"/models", nil)
		a.send(tr, req)
		a.printAll(log, "azuread.Credential(fake)", az)
		cs, err := azidentity.NewClientSecretCredential("00000000-0000-0000-0000-000000000000", clientID, azSecret, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.printAll(log, "azuread.Credential(ClientSecretCredential)", azuread.New(cs))
		a.printAll(log, "azuread.Credential(default, not created)", azuread.New(nil))
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
	for i, as := range append(assertions.seen(), fileContents...) {
		forbidden[fmt.Sprintf("assertion %d", i)] = as
		forbidden[fmt.Sprintf("assertion %d, query-escaped", i)] = url.QueryEscape(as)
		forbidden[fmt.Sprintf("signature of assertion %d", i)] = as[strings.LastIndexByte(as, '.')+1:]
	}
	for name, k := range map[string]*big.Int{"RSA key D": rsaKey.D, "RSA key prime": rsaKey.Primes[0], "workload key D": workloadKey.D, "ECDSA key D": ecKeyD(ecKey)} {
		forbidden[name] = k.String()
		forbidden[name+", hex"] = k.Text(16)
		forbidden[name+", base64url"] = base64.RawURLEncoding.EncodeToString(k.Bytes())
	}
	for name, k := range map[string]any{"RSA key": rsaKey, "ECDSA key": ecKey} {
		der := must(x509.MarshalPKCS8PrivateKey(k))
		forbidden[name+" PKCS #8, base64"] = base64.StdEncoding.EncodeToString(der)[40:100]
	}
	if len(assertions.seen()) == 0 || len(fileContents) == 0 {
		t.Error("the audit saw no assertion")
	}
	for _, s := range []*sandbox.TokenServer{idp, shortIdp, assertions.idp} {
		for _, tok := range s.Tokens() {
			forbidden["issued token "+tok[:6]+"..."] = tok
		}
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

	// The audit saw every kind of log record, and the forms that show
	// redaction and recovered panics.
	for _, ev := range []string{"token_fetched", "refresh_started", "fetch_failed", "retry", "retry_skipped", "refusal_hold"} {
		if len(logs.Events(ev)) == 0 {
			t.Errorf("the audit never saw a %q record", ev)
		}
	}
	for _, r := range logs.Records() {
		if _, ok := r.Attrs["event"]; !ok && r.Message != printed {
			t.Errorf("a %v record %q has no event attribute", r.Level, r.Message)
		}
	}
	for _, want := range []string{"REDACTED", "ClientSecretCredential", "panic in a nil request", "PrivateKey:*rsa.PrivateKey", "ClientAssertion:set", "PrivateKey:*testkey.Signer"} {
		if !strings.Contains(out, want) {
			t.Errorf("the audit never saw %q", want)
		}
	}
	if testing.Verbose() {
		t.Logf("audited %d bytes, %d issued tokens, %d forbidden strings", len(out), len(idp.Tokens())+len(shortIdp.Tokens()), len(forbidden))
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
