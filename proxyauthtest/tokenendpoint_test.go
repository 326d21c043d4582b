package proxyauthtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/proxyauthtest"
)

// tokenRequest is a token request built by hand, so that the fake is checked
// against the RFC rather than against the credential that talks to it.
type tokenRequest struct {
	method string
	url    string
	basic  []string // id, secret; nil: no Authorization
	form   url.Values
}

// answer is what a test reads of a response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func send(t *testing.T, fake *proxyauthtest.Fake, req *http.Request) answer {
	t.Helper()
	resp, err := fake.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: answer %d is not a JSON object: %v", req.Method, req.URL, resp.StatusCode, err)
	}
	return a
}

func (r tokenRequest) send(t *testing.T, fake *proxyauthtest.Fake) answer {
	t.Helper()
	method, u := r.method, r.url
	if method == "" {
		method = http.MethodPost
	}
	if u == "" {
		u = proxyauthtest.TokenURL
	}
	req, err := http.NewRequest(method, u, strings.NewReader(r.form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.basic != nil {
		req.SetBasicAuth(r.basic[0], r.basic[1])
	}
	return send(t, fake, req)
}

var grant = url.Values{"grant_type": {"client_credentials"}}

func withForm(extra ...string) url.Values {
	v := url.Values{"grant_type": {"client_credentials"}}
	for i := 0; i < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func TestTokenEndpointRequests(t *testing.T) {
	basic := []string{proxyauthtest.ClientID, proxyauthtest.ClientSecret}
	tests := []struct {
		name      string
		req       tokenRequest
		status    int
		code      string               // error code; "" for a token
		authStyle credential.AuthStyle // of the issued token
	}{
		{"client_secret_basic", tokenRequest{basic: basic, form: grant}, 200, "", credential.AuthStyleHeader},
		{"client_secret_basic, form-urlencoded", tokenRequest{
			basic: []string{"proxyauthtest%2Dclient", "proxyauthtest%2Dsecret"}, form: grant,
		}, 200, "", credential.AuthStyleHeader},
		{"client_secret_post", tokenRequest{
			form: withForm("client_id", proxyauthtest.ClientID, "client_secret", proxyauthtest.ClientSecret),
		}, 200, "", credential.AuthStyleParams},
		{"wrong secret, basic", tokenRequest{basic: []string{proxyauthtest.ClientID, "nope"}, form: grant}, 401, "invalid_client", 0},
		{"wrong id, basic", tokenRequest{basic: []string{"someone", proxyauthtest.ClientSecret}, form: grant}, 401, "invalid_client", 0},
		{"wrong secret, post", tokenRequest{
			form: withForm("client_id", proxyauthtest.ClientID, "client_secret", "nope"),
		}, 401, "invalid_client", 0},
		{"no client authentication", tokenRequest{form: grant}, 401, "invalid_client", 0},
		{"basic and a form secret", tokenRequest{
			basic: basic, form: withForm("client_secret", proxyauthtest.ClientSecret),
		}, 401, "invalid_client", 0},
		{"password grant", tokenRequest{basic: basic, form: url.Values{"grant_type": {"password"}}}, 400, "unsupported_grant_type", 0},
		{"no grant", tokenRequest{basic: basic, form: url.Values{}}, 400, "unsupported_grant_type", 0},
		{"GET", tokenRequest{method: http.MethodGet, basic: basic, form: grant}, 405, "invalid_request", 0},
		{"another path", tokenRequest{url: "https://idp.proxyauth.test/oauth2/other", basic: basic, form: grant}, 404, "invalid_request", 0},
	}
	fake := proxyauthtest.New(nil)
	issued := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.req.send(t, fake)
			if a.status != tt.status {
				t.Fatalf("status %d; want %d (body %v)", a.status, tt.status, a.body)
			}
			if got := a.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q; want no-store (RFC 6749 section 5.1)", got)
			}
			if tt.code != "" {
				if a.body["error"] != tt.code {
					t.Errorf("error %v; want %s", a.body["error"], tt.code)
				}
				if _, ok := a.body["access_token"]; ok {
					t.Error("an error answer holds an access_token")
				}
				if tt.status == 401 && a.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			issued++
			if a.body["token_type"] != "Bearer" || a.body["expires_in"] != 3600.0 {
				t.Errorf("token_type %v, expires_in %v; want Bearer, 3600", a.body["token_type"], a.body["expires_in"])
			}
			toks := fake.IdP.Tokens()
			last := toks[len(toks)-1]
			if a.body["access_token"] != last.Value || !fake.IdP.Valid(last.Value) {
				t.Errorf("the answer's token is not the last one issued, or is not valid")
			}
			if last.AuthStyle != tt.authStyle {
				t.Errorf("AuthStyle %v; want %v", last.AuthStyle, tt.authStyle)
			}
		})
	}
	if got := fake.IdP.Requests(); got != len(tests) {
		t.Errorf("Requests() = %d; want %d", got, len(tests))
	}
	if got := len(fake.IdP.Tokens()); got != issued || issued != 3 {
		t.Errorf("%d tokens issued, %d successful cases; want 3 of each", got, issued)
	}
}

func newOAuth2(t *testing.T, fake *proxyauthtest.Fake, style credential.AuthStyle) *credential.OAuth2 {
	t.Helper()
	cfg := fake.OAuth2Config()
	cfg.AuthStyle = style
	cred, err := credential.NewOAuth2(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// TestOAuth2Credential runs the library's own credential, in each auth
// style, against the fake.
func TestOAuth2Credential(t *testing.T) {
	for _, tt := range []struct {
		style, want credential.AuthStyle
	}{
		{credential.AuthStyleAuto, credential.AuthStyleHeader},
		{credential.AuthStyleHeader, credential.AuthStyleHeader},
		{credential.AuthStyleParams, credential.AuthStyleParams},
	} {
		t.Run(tt.style.String(), func(t *testing.T) {
			fake := proxyauthtest.New(nil)
			tok, err := newOAuth2(t, fake, tt.style).GetToken(context.Background(), " llm.invoke  llm.read ")
			if err != nil {
				t.Fatal(err)
			}
			if !fake.IdP.Valid(tok.Token) {
				t.Error("the fake does not know the token it issued")
			}
			toks := fake.IdP.Tokens()
			if len(toks) != 1 || fake.IdP.Requests() != 1 {
				t.Fatalf("%d tokens, %d requests; want 1, 1", len(toks), fake.IdP.Requests())
			}
			if toks[0].Value != tok.Token || toks[0].Scope != "llm.invoke llm.read" || toks[0].AuthStyle != tt.want {
				t.Errorf("issued %v; want scope %q and auth style %v", toks[0], "llm.invoke llm.read", tt.want)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	clock := testutil.NewClock()
	fake := proxyauthtest.New(&proxyauthtest.Options{Now: clock.Now, Lifetime: 90 * time.Second})
	basic := []string{proxyauthtest.ClientID, proxyauthtest.ClientSecret}
	issue := func() (proxyauthtest.IssuedToken, float64) {
		t.Helper()
		a := tokenRequest{basic: basic, form: grant}.send(t, fake)
		toks := fake.IdP.Tokens()
		return toks[len(toks)-1], a.body["expires_in"].(float64)
	}

	tests := []struct {
		name     string
		set      time.Duration // 0: keep
		wantLife time.Duration
	}{
		{"from Options", 0, 90 * time.Second},
		{"SetLifetime", 10 * time.Minute, 10 * time.Minute},
		{"cut to whole seconds", 2500 * time.Millisecond, 2 * time.Second},
		{"at least a second", time.Millisecond, time.Second},
		{"negative", -time.Hour, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.set != 0 {
				fake.IdP.SetLifetime(tt.set)
			}
			tok, expiresIn := issue()
			if expiresIn != tt.wantLife.Seconds() {
				t.Errorf("expires_in %v; want %v", expiresIn, tt.wantLife.Seconds())
			}
			if !tok.IssuedAt.Equal(clock.Now()) || tok.ExpiresOn.Sub(tok.IssuedAt) != tt.wantLife {
				t.Errorf("IssuedAt %v, ExpiresOn %v; want the clock's now (%v) and %v later", tok.IssuedAt, tok.ExpiresOn, clock.Now(), tt.wantLife)
			}
			start := clock.Now()
			clock.Set(tok.ExpiresOn.Add(-time.Nanosecond))
			if !fake.IdP.Valid(tok.Value) {
				t.Error("invalid a nanosecond before its expiry")
			}
			clock.Set(tok.ExpiresOn)
			if fake.IdP.Valid(tok.Value) {
				t.Error("still valid at its expiry")
			}
			clock.Set(start)
		})
	}
}

func TestDefaultLifetime(t *testing.T) {
	fake := proxyauthtest.New(&proxyauthtest.Options{})
	tok, err := newOAuth2(t, fake, credential.AuthStyleHeader).GetToken(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	it := fake.IdP.Tokens()[0]
	if it.ExpiresOn.Sub(it.IssuedAt) != time.Hour || it.Scope != "" {
		t.Errorf("lifetime %v, scope %q; want 1h and none", it.ExpiresOn.Sub(it.IssuedAt), it.Scope)
	}
	// The credential computes expiry from expires_in and its own clock.
	if d := time.Until(tok.ExpiresOn); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("the credential's token expires in %v; want about an hour", d)
	}
}

func TestRevoke(t *testing.T) {
	fake := proxyauthtest.New(nil)
	cred := newOAuth2(t, fake, credential.AuthStyleHeader)
	var toks []string
	for range 3 {
		tok, err := cred.GetToken(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok.Token)
	}
	valid := func() []bool {
		v := make([]bool, len(toks))
		for i, tok := range toks {
			v[i] = fake.IdP.Valid(tok)
		}
		return v
	}
	if got := fmt.Sprint(valid()); got != "[true true true]" {
		t.Fatalf("valid %s before revocation", got)
	}
	if !fake.IdP.Revoke(toks[1]) {
		t.Error("Revoke of an issued token = false; want true")
	}
	if !fake.IdP.Revoke(toks[1]) {
		t.Error("Revoke of a revoked token = false; want true")
	}
	if fake.IdP.Revoke("at_unknown") || fake.IdP.Revoke("") {
		t.Error("Revoke of an unknown token = true")
	}
	if got := fmt.Sprint(valid()); got != "[true false true]" {
		t.Errorf("valid %s after revoking the second; want [true false true]", got)
	}
	var revoked []bool
	for _, it := range fake.IdP.Tokens() {
		revoked = append(revoked, it.Revoked)
	}
	if got := fmt.Sprint(revoked); got != "[false true false]" {
		t.Errorf("Tokens().Revoked %s; want [false true false]", got)
	}
	fake.IdP.RevokeAll()
	if got := fmt.Sprint(valid()); got != "[false false false]" {
		t.Errorf("valid %s after RevokeAll", got)
	}
	tok, err := cred.GetToken(context.Background(), "")
	if err != nil || !fake.IdP.Valid(tok.Token) {
		t.Errorf("a token issued after RevokeAll: valid %v, err %v; want valid", fake.IdP.Valid(tok.Token), err)
	}
}

func TestFail(t *testing.T) {
	basic := []string{proxyauthtest.ClientID, proxyauthtest.ClientSecret}
	tests := []struct {
		name       string
		failure    proxyauthtest.Failure
		requests   int    // sent while failing
		failed     int    // of which answered with failure.Status
		retryAfter string // the header; "" for none
		code       string
	}{
		{"503 until ended", proxyauthtest.Failure{Status: 503, RetryAfter: 2 * time.Second}, 4, 4, "2", "temporarily_unavailable"},
		{"429 twice, Retry-After rounded up", proxyauthtest.Failure{Status: 429, RetryAfter: 1500 * time.Millisecond, Count: 2}, 3, 2, "2", "temporarily_unavailable"},
		{"500 once, no Retry-After", proxyauthtest.Failure{Status: 500, Count: 1}, 2, 1, "", "server_error"},
		{"401", proxyauthtest.Failure{Status: 401, Count: 1}, 1, 1, "", "invalid_client"},
		{"400", proxyauthtest.Failure{Status: 400, Count: 1}, 1, 1, "", "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := proxyauthtest.New(nil)
			fake.IdP.Fail(tt.failure)
			for i := range tt.requests {
				a := tokenRequest{basic: basic, form: grant}.send(t, fake)
				if i >= tt.failed {
					if a.status != 200 {
						t.Errorf("request %d: status %d; want 200 after %d failures", i+1, a.status, tt.failed)
					}
					continue
				}
				if a.status != tt.failure.Status || a.body["error"] != tt.code || a.header.Get("Retry-After") != tt.retryAfter {
					t.Errorf("request %d: status %d, error %v, Retry-After %q; want %d, %s, %q",
						i+1, a.status, a.body["error"], a.header.Get("Retry-After"), tt.failure.Status, tt.code, tt.retryAfter)
				}
			}
			fake.IdP.Fail(proxyauthtest.Failure{})
			if a := (tokenRequest{basic: basic, form: grant}).send(t, fake); a.status != 200 {
				t.Errorf("status %d after Fail(Failure{}); want 200", a.status)
			}
			if got, want := len(fake.IdP.Tokens()), tt.requests-tt.failed+1; got != want {
				t.Errorf("%d tokens issued; want %d", got, want)
			}
			if got, want := fake.IdP.Requests(), tt.requests+1; got != want {
				t.Errorf("Requests() = %d; want %d", got, want)
			}
		})
	}
}

// TestFailBeforeChecks: an overloaded endpoint answers before it looks at
// the client.
func TestFailBeforeChecks(t *testing.T) {
	fake := proxyauthtest.New(nil)
	fake.IdP.Fail(proxyauthtest.Failure{Status: 503, Count: 1})
	if a := (tokenRequest{basic: []string{"x", "y"}, form: grant}).send(t, fake); a.status != 503 {
		t.Errorf("status %d; want 503", a.status)
	}
}

func TestFailSeenByCredential(t *testing.T) {
	fake := proxyauthtest.New(nil)
	fake.IdP.Fail(proxyauthtest.Failure{Status: http.StatusServiceUnavailable, RetryAfter: 3 * time.Second})
	_, err := newOAuth2(t, fake, credential.AuthStyleAuto).GetToken(context.Background(), "")
	var oe *credential.OAuth2Error
	if !errors.As(err, &oe) || oe.StatusCode != 503 || oe.Code != "temporarily_unavailable" || oe.RetryAfter != 3*time.Second {
		t.Fatalf("err %v; want an OAuth2Error 503 temporarily_unavailable with RetryAfter 3s", err)
	}
	// AuthStyleAuto does not try form fields after a 5xx.
	if got := fake.IdP.Requests(); got != 1 {
		t.Errorf("Requests() = %d; want 1", got)
	}
}

func TestFailRefusesNonsense(t *testing.T) {
	fake := proxyauthtest.New(nil)
	for _, f := range []proxyauthtest.Failure{{Status: 302}, {Status: 200}, {Status: 600}, {Status: 503, Count: -1}, {Status: 503, RetryAfter: -time.Second}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Fail(%+v) did not panic", f)
				}
			}()
			fake.IdP.Fail(f)
		}()
	}
}

// result is what a goroutine got from a credential.
type result struct {
	tok credential.AccessToken
	err error
}

func getToken(ctx context.Context, cred credential.TokenCredential) <-chan result {
	ch := make(chan result, 1)
	go func() {
		tok, err := cred.GetToken(ctx, "")
		ch <- result{tok, err}
	}()
	return ch
}

// waitHeld waits until n token requests are held, failing the test if they
// are not within HangTimeout.
func waitHeld(t *testing.T, fake *proxyauthtest.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangTimeout)
	defer cancel()
	if err := fake.IdP.WaitHeld(ctx, n); err != nil {
		t.Fatalf("%d token requests were not held within %v: %v", n, testutil.HangTimeout, err)
	}
}

// WaitHeld returns at once when enough requests are held, and with its
// context's error when they never come.
func TestWaitHeld(t *testing.T) {
	fake := proxyauthtest.New(nil)
	if err := fake.IdP.WaitHeld(context.Background(), 0); err != nil {
		t.Errorf("WaitHeld(0): %v; want nil at once", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fake.IdP.WaitHeld(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitHeld(1) with nothing held and an ended context: %v; want context.Canceled", err)
	}
}

func TestHold(t *testing.T) {
	fake := proxyauthtest.New(nil)
	cred := newOAuth2(t, fake, credential.AuthStyleHeader)
	fake.IdP.Release() // not holding: nothing happens

	fake.IdP.Hold()
	fake.IdP.Hold() // no second gate
	got := getToken(context.Background(), cred)
	waitHeld(t, fake, 1)
	if n := len(fake.IdP.Tokens()); n != 0 || fake.IdP.Requests() != 1 {
		t.Fatalf("%d tokens, %d requests while held; want 0, 1", n, fake.IdP.Requests())
	}
	fake.IdP.Release()
	r := testutil.Recv(t, got, "the token after Release")
	if r.err != nil || !fake.IdP.Valid(r.tok.Token) {
		t.Fatalf("after Release: err %v; want a valid token", r.err)
	}
	if fake.IdP.Held() != 0 {
		t.Errorf("Held() = %d after Release; want 0", fake.IdP.Held())
	}
	// Released for good: the next request is not held.
	if _, err := cred.GetToken(context.Background(), ""); err != nil {
		t.Fatal(err)
	}

	// A held request whose context ends returns at once.
	fake.IdP.Hold()
	defer fake.IdP.Release()
	ctx, cancel := context.WithCancel(context.Background())
	got = getToken(ctx, cred)
	waitHeld(t, fake, 1)
	cancel()
	r = testutil.Recv(t, got, "the cancelled request to return")
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("err %v; want context.Canceled", r.err)
	}
	testutil.Eventually(t, "the cancelled request to leave the hold", func() bool { return fake.IdP.Held() == 0 })
	if n := len(fake.IdP.Tokens()); n != 2 || fake.IdP.Requests() != 3 {
		t.Errorf("%d tokens, %d requests; want 2, 3", n, fake.IdP.Requests())
	}
}

func TestDelay(t *testing.T) {
	fake := proxyauthtest.New(nil)
	cred := newOAuth2(t, fake, credential.AuthStyleHeader)

	fake.IdP.SetDelay(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	got := getToken(ctx, cred)
	testutil.Eventually(t, "the token request to arrive", func() bool { return fake.IdP.Requests() == 1 })
	cancel()
	if r := testutil.Recv(t, got, "the delayed request to end with its context"); !errors.Is(r.err, context.Canceled) {
		t.Errorf("err %v; want context.Canceled", r.err)
	}

	// Only a lower bound: how much longer a loaded machine takes is not
	// the fake's business.
	const d = 20 * time.Millisecond
	fake.IdP.SetDelay(d)
	start := time.Now()
	if _, err := cred.GetToken(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < d {
		t.Errorf("answered after %v; want at least %v", el, d)
	}
	fake.IdP.SetDelay(0)
	if _, err := cred.GetToken(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.IdP.Tokens()); n != 2 {
		t.Errorf("%d tokens; want 2", n)
	}
}

// TestConcurrentTokenRequests holds every request until all have arrived,
// so that they are inside the endpoint at the same time.
func TestConcurrentTokenRequests(t *testing.T) {
	const n = 32
	fake := proxyauthtest.New(nil)
	cred := newOAuth2(t, fake, credential.AuthStyleHeader)
	fake.IdP.Hold()
	results := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			tok, err := cred.GetToken(context.Background(), "")
			results <- result{tok, err}
		})
	}
	waitHeld(t, fake, n)
	if held := fake.IdP.Held(); held != n {
		t.Errorf("Held() = %d; want %d", held, n)
	}
	fake.IdP.Release()
	testutil.Wait(t, &wg, "the token requests to return")
	close(results)
	seen := map[string]bool{}
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if seen[r.tok.Token] {
			t.Fatal("a token was issued twice")
		}
		seen[r.tok.Token] = true
	}
	if len(seen) != n || fake.IdP.Requests() != n || len(fake.IdP.Tokens()) != n {
		t.Errorf("%d distinct tokens, %d requests, %d issued; want %d of each", len(seen), fake.IdP.Requests(), len(fake.IdP.Tokens()), n)
	}
	for _, it := range fake.IdP.Tokens() {
		if !seen[it.Value] {
			t.Error("Tokens() lists a token that no caller got")
		}
	}
}

var tokenShape = regexp.MustCompile(`^at_[A-Za-z0-9_-]{32}$`)

func TestTokensLookRandom(t *testing.T) {
	fake := proxyauthtest.New(nil)
	cred := newOAuth2(t, fake, credential.AuthStyleHeader)
	const n = 64
	// The character after the prefix takes 64 values: 64 random tokens
	// show about 40 of them, and fewer than 16 about never.
	firsts := map[byte]bool{}
	for range n {
		tok, err := cred.GetToken(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if !tokenShape.MatchString(tok.Token) {
			t.Fatalf("a token of length %d does not look like at_ and 32 base64url characters", len(tok.Token))
		}
		firsts[tok.Token[3]] = true
	}
	if len(firsts) < 16 {
		t.Errorf("%d tokens start with only %d distinct characters after the prefix", n, len(firsts))
	}
}

// TestIssuedTokenPrintsNoToken prints an IssuedToken every way a test or
// a log might.
func TestIssuedTokenPrintsNoToken(t *testing.T) {
	fake := proxyauthtest.New(nil)
	if _, err := newOAuth2(t, fake, credential.AuthStyleHeader).GetToken(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	it := fake.IdP.Tokens()[0]
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
		outs = append(outs, fmt.Sprintf(verb, it), fmt.Sprintf(verb, []proxyauthtest.IssuedToken{it}))
	}
	outs = append(outs, fmt.Sprint(it), fmt.Sprintln(&it))
	j, err := json.Marshal(it)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("issued", "token", it)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("issued", "token", it)
	outs = append(outs, buf.String())
	for _, out := range outs {
		if strings.Contains(out, it.Value) || strings.Contains(out, it.Value[3:]) {
			t.Errorf("printed the token: %s", strings.ReplaceAll(out, it.Value, "<token>"))
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("no REDACTED in %s", out)
		}
	}
	if !strings.Contains(fmt.Sprint(it), `Scope:"s" AuthStyle:Header`) {
		t.Errorf("String %s; want the scope and the auth style", it)
	}
}

// A token request without a body is refused, not a crash of the test
// binary: httpmock passes a nil body through to the responder.
func TestTokenRequestWithoutBody(t *testing.T) {
	fake := proxyauthtest.New(nil)
	req, err := http.NewRequest(http.MethodPost, proxyauthtest.TokenURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := fake.Client().Do(req)
	if err != nil {
		t.Fatalf("POST without a body: %v; want an answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a body: status %d; want 400 or 401", resp.StatusCode)
	}
	if n := len(fake.IdP.Tokens()); n != 0 {
		t.Errorf("tokens issued: %d; want 0", n)
	}
}
