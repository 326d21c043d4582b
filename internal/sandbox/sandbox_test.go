package sandbox

import (
	"io"
	"net/http"
	"net/url"
	"strings"
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
