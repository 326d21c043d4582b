package hardening_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/transport"
)

// The tests in this file mark the edge of what the transport protects: what
// it leaves to the caller, as the security notes of the README say.

// redirectingBase answers the first request with a redirect to location and
// records the Authorization header of the hop.
func redirectingBase(location string, hopAuth *string) http.RoundTripper {
	return testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Response == nil {
			resp := testutil.Response(r, http.StatusFound, "")
			resp.Header.Set("Location", location)
			return resp, nil
		}
		*hopAuth = r.Header.Get("Authorization")
		return testutil.Response(r, http.StatusOK, ""), nil
	})
}

// A redirect to a subdomain of the original host carries the token, as
// net/http's own rule does: whoever runs a subdomain gets it. A caller
// who does not trust every subdomain stops such redirects with the
// client's CheckRedirect.
func TestSubdomainRedirectNeedsCheckRedirect(t *testing.T) {
	const token = "subdomain-token"
	var hopAuth string
	client := transport.Wrap(&http.Client{Transport: redirectingBase("https://tenant-b.llm.example.com/v1", &hopAuth)},
		credential.Static(token), "s", nil)
	resp, err := client.Get("https://llm.example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hopAuth != "Bearer "+token {
		t.Fatalf("hop Authorization = %q; want the token (the documented rule)", hopAuth)
	}

	hopAuth = ""
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != via[0].URL.Host {
			return errors.New("redirect to another host refused")
		}
		return nil
	}
	if _, err := client.Get("https://llm.example.com/v1"); err == nil || hopAuth != "" {
		t.Fatalf("with CheckRedirect: err %v, hop Authorization %q; want the redirect refused", err, hopAuth)
	}
}

// The response's Request is the request that was sent, token included, as
// net/http documents: a caller who logs or dumps resp.Request (or an SDK
// error that keeps it) logs the token.
func TestResponseRequestHoldsToken(t *testing.T) {
	const token = "response-request-token"
	base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		return testutil.Response(r, http.StatusOK, ""), nil
	})
	client := transport.Wrap(&http.Client{Transport: base}, credential.Static(token), "s", nil)
	req, _ := http.NewRequest(http.MethodGet, "https://llm.example.com/v1", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("Authorization") != "" {
		t.Fatal("the caller's request got the token")
	}
	if got := resp.Request.Header.Get("Authorization"); got != "Bearer "+token {
		t.Fatalf("resp.Request Authorization = %q; this test documents that it holds the token", got)
	}
}

// encoding/json: AccessToken and OAuth2Config redact their secrets.
func TestJSONRedaction(t *testing.T) {
	t.Run("AccessToken", func(t *testing.T) {
		b, err := json.Marshal(credential.AccessToken{Token: "json-token", ExpiresOn: time.Now().Add(time.Hour)})
		if err != nil || strings.Contains(string(b), "json-token") {
			t.Fatalf("json.Marshal(AccessToken) = %s, %v; want the token redacted", b, err)
		}
	})
	t.Run("OAuth2Config", func(t *testing.T) {
		b, err := json.Marshal(credential.OAuth2Config{ClientID: "id", ClientSecret: "json-secret", TokenURL: "https://idp.example/token"})
		if err != nil || strings.Contains(string(b), "json-secret") {
			t.Fatalf("json.Marshal(OAuth2Config) = %s, %v; want the secret redacted", b, err)
		}
	})
}
