package credential

import (
	"net/http"
	"testing"
	"time"
)

func TestDefaultHTTPClient(t *testing.T) {
	t.Parallel()
	o, err := NewOAuth2(OAuth2Config{ClientID: "id", ClientSecret: "s3cr3t-Val", TokenURL: "https://idp.example/token"})
	if err != nil {
		t.Fatal(err)
	}
	if o.client != defaultHTTPClient() {
		t.Errorf("client: got %p; want the shared default client", o.client)
	}
	if got := o.client.Timeout; got != 30*time.Second {
		t.Errorf("Timeout: got %v; want 30s", got)
	}
	if o.client.CheckRedirect == nil || o.client.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Errorf("CheckRedirect: got one that follows redirects; want http.ErrUseLastResponse, since a redirect would carry the secret")
	}
	tr, ok := o.client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport: got %T; want *http.Transport", o.client.Transport)
	}
	if tr.TLSHandshakeTimeout == 0 || tr.ResponseHeaderTimeout == 0 || tr.IdleConnTimeout == 0 || tr.Proxy == nil {
		t.Errorf("Transport: got TLSHandshakeTimeout %v, ResponseHeaderTimeout %v, IdleConnTimeout %v, Proxy set %v; want all set",
			tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout, tr.IdleConnTimeout, tr.Proxy != nil)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://idp.example/token", "https://idp.example/token"},
		{"https://user:pw@idp.example:8443/t?secret=x#frag", "https://idp.example:8443/t"},
		{"https://idp.example/token?", "https://idp.example/token"},
		{"https://idp.example/%zz", "(unparsable URL)"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q): got %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestChallengeError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		values              []string
		code, desc, uriWant string
	}{
		{"quoted", []string{`Basic realm="a, b", error="invalid_client", error_description="it \"failed\""`}, "invalid_client", `it "failed"`, ""},
		{"token form", []string{`Bearer error=invalid_token, error_uri="https://e"`}, "invalid_token", "", "https://e"},
		{"second challenge", []string{`Negotiate`, `Basic realm="x", ERROR="invalid_client"`}, "invalid_client", "", ""},
		{"none", []string{`Basic realm="x"`}, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Www-Authenticate": tt.values}
			code, desc, uri := challengeError(h)
			if code != tt.code || desc != tt.desc || uri != tt.uriWant {
				t.Errorf("got %q %q %q; want %q %q %q", code, desc, uri, tt.code, tt.desc, tt.uriWant)
			}
		})
	}
}
