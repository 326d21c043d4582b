package sandbox

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func token(t *testing.T, s *TokenServer, basic bool, secret string) (string, int) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if !basic {
		form.Set("client_id", s.ClientID())
		form.Set("client_secret", secret)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(s.ClientID(), secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	tok, _, _ := strings.Cut(strings.TrimPrefix(string(b), `{"access_token":"`), `"`)
	return tok, resp.StatusCode
}

func TestTokenServerAndProxy(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	idp := NewTokenServer(TokenServerConfig{Lifetime: time.Minute, Now: clock})
	defer idp.Close()
	p := NewProxy(idp, ProxyConfig{})
	defer p.Close()
	defer http.DefaultClient.CloseIdleConnections()

	call := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/models", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	if _, st := token(t, idp, true, "wrong"); st != http.StatusUnauthorized {
		t.Fatalf("wrong secret: status %d; want 401", st)
	}
	basic, st := token(t, idp, true, idp.ClientSecret())
	if st != http.StatusOK || !strings.HasPrefix(basic, "at_") {
		t.Fatalf("basic: %d %q", st, basic)
	}
	form, st := token(t, idp, false, idp.ClientSecret())
	if st != http.StatusOK || form == basic {
		t.Fatalf("form: %d", st)
	}
	if got := call(basic); got != http.StatusOK {
		t.Fatalf("valid token: %d; want 200", got)
	}
	if got := call("at_forged"); got != http.StatusUnauthorized {
		t.Fatalf("forged token: %d; want 401", got)
	}
	idp.Revoke(basic)
	if got := call(basic); got != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d; want 401", got)
	}
	now = now.Add(time.Minute)
	if got := call(form); got != http.StatusUnauthorized {
		t.Fatalf("expired token: %d; want 401", got)
	}
	if p.Accepted() != 1 || p.Rejected() != 3 || idp.Issued() != 2 || idp.Requests() != 3 {
		t.Fatalf("counts: accepted %d rejected %d issued %d requests %d", p.Accepted(), p.Rejected(), idp.Issued(), idp.Requests())
	}
	idp.SetDown(http.StatusServiceUnavailable)
	if _, st := token(t, idp, true, idp.ClientSecret()); st != http.StatusServiceUnavailable {
		t.Fatalf("down: status %d; want 503", st)
	}
}

func TestProxyRoutesAndRecords(t *testing.T) {
	idp := NewTokenServer(TokenServerConfig{})
	defer idp.Close()
	p := NewProxy(idp, ProxyConfig{})
	defer p.Close()
	discard := NewProxy(idp, ProxyConfig{DiscardSeen: true})
	defer discard.Close()
	defer http.DefaultClient.CloseIdleConnections()
	tok, st := token(t, idp, true, idp.ClientSecret())
	if st != http.StatusOK {
		t.Fatalf("token: status %d; want 200", st)
	}

	tests := []struct {
		name string
		url  string
		want int
	}{
		{"openai chat", p.URL + "/chat/completions", http.StatusOK},
		{"openai embeddings", p.URL + "/embeddings", http.StatusOK},
		{"azure chat", p.Root + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", http.StatusOK},
		{"azure embeddings", p.Root + "/openai/deployments/emb/embeddings?api-version=2024-10-21", http.StatusOK},
		{"azure without endpoint", p.Root + "/openai/deployments/gpt-4o", http.StatusNotFound},
		{"unknown", p.URL + "/nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tt.url, strings.NewReader(`{"model":"m","messages":[]}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header["Api-Key"] = []string{""}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d; want %d", resp.StatusCode, tt.want)
			}
			seen := p.Seen()
			last := seen[len(seen)-1]
			if v, ok := last.Header["Api-Key"]; !ok || len(v) != 1 || v[0] != "" {
				t.Errorf("Header[Api-Key] = %q (present %v); want one empty value", v, ok)
			}
			if want := req.URL.RawQuery; last.RawQuery != want {
				t.Errorf("RawQuery %q; want %q", last.RawQuery, want)
			}
		})
	}

	req, _ := http.NewRequest(http.MethodGet, discard.URL+"/models", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(discard.Seen()); n != 0 || discard.Accepted() != 1 {
		t.Fatalf("DiscardSeen: %d seen, %d accepted; want 0 seen, 1 accepted", n, discard.Accepted())
	}
}

func TestLifetimeFuncTokensAndHandler(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	var lives []int64
	idp := NewTokenServer(TokenServerConfig{
		Now: clock,
		LifetimeFunc: func(n int64) time.Duration {
			lives = append(lives, n) // token requests are sequential here
			return []time.Duration{3 * time.Second, 500 * time.Millisecond, 2 * time.Second}[n-1]
		},
	})
	defer idp.Close()
	// The server behind a handler of the test's own, as fault injection does.
	var wrapped atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wrapped.Add(1)
		idp.ServeHTTP(w, r)
	}))
	defer front.Close()
	p := NewProxy(idp, ProxyConfig{})
	defer p.Close()
	defer http.DefaultClient.CloseIdleConnections()

	var got []string
	for _, url := range []string{idp.URL, front.URL, idp.URL} {
		b, st := tokenAnswer(t, url, idp.ClientID(), idp.ClientSecret())
		if st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
		got = append(got, b)
	}
	for i, want := range []string{`"expires_in":3`, `"expires_in":1`, `"expires_in":2`} {
		if !strings.Contains(got[i], want) {
			t.Errorf("answer %d = %s; want %s", i+1, got[i], want)
		}
	}
	if fmt.Sprint(lives) != "[1 2 3]" || wrapped.Load() != 1 || idp.Requests() != 3 {
		t.Fatalf("LifetimeFunc asked for %v; wrapped %d; requests %d", lives, wrapped.Load(), idp.Requests())
	}
	toks := idp.Tokens()
	if len(toks) != 3 || !strings.Contains(got[0], toks[0]) || !strings.Contains(got[2], toks[2]) {
		t.Fatalf("Tokens() = %d tokens, not the ones issued in order", len(toks))
	}
	now = now.Add(time.Second) // the 500 ms token counts as one second
	if idp.Valid(toks[1]) || !idp.Valid(toks[0]) || !idp.Valid(toks[2]) {
		t.Fatal("validity after 1 s: want only the second token expired")
	}

	req, _ := http.NewRequest(http.MethodGet, p.URL+"/models", nil)
	req.Header.Set("Authorization", "Bearer "+toks[0])
	req.Header.Set("X-Request-Id", "r-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := p.Seen(); len(s) != 1 || s[0].RequestID != "r-42" || !s[0].Valid {
		t.Fatalf("Seen = %+v; want one valid request r-42", s)
	}
}

func tokenAnswer(t *testing.T, tokenURL, id, secret string) (string, int) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// A secret with characters that form encoding changes is accepted in the
// RFC 6749 form of HTTP Basic (form-encoded first) and as it is.
func TestBasicAuthFormEncoded(t *testing.T) {
	const secret = "s3cr3t/+=&%42?"
	idp := NewTokenServer(TokenServerConfig{ClientID: "id:x", ClientSecret: secret})
	defer idp.Close()
	defer http.DefaultClient.CloseIdleConnections()
	for _, c := range []struct {
		id, secret string
		want       int
	}{
		{url.QueryEscape("id:x"), url.QueryEscape(secret), http.StatusOK},
		{"id:x", secret, http.StatusUnauthorized}, // a colon in the raw ID cannot go through Basic
		{"id%3Ax", secret, http.StatusOK},
		{url.QueryEscape("id:x"), "s3cr3t/ =&%42?", http.StatusUnauthorized},
	} {
		if _, st := tokenAnswer(t, idp.URL, c.id, c.secret); st != c.want {
			t.Errorf("Basic %q:%q: status %d; want %d", c.id, c.secret, st, c.want)
		}
	}
}
