package credential

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jarcoal/httpmock"
)

// A token endpoint that redirects must not get the client secret sent on
// to the redirect's target: net/http would resend the form on 307 and 308,
// and keeps the Authorization header on a redirect to the same host. The
// client's redirect policy runs above its transport, so canned answers of
// an httpmock transport exercise it as a real server would.
func TestOAuth2DoesNotFollowRedirects(t *testing.T) {
	const tokenURL = "https://idp.example/oauth2/token"
	targets := map[string]string{
		"another host":  "https://attacker.example/steal",
		"the same host": "https://idp.example/other",
		"plain http":    "http://idp.example/oauth2/token",
	}
	follow := func(*http.Request, []*http.Request) error { return nil }
	for _, style := range []AuthStyle{AuthStyleHeader, AuthStyleParams, AuthStyleAuto} {
		for _, status := range []int{301, 302, 303, 307, 308} {
			for where, target := range targets {
				for _, clientPolicy := range []string{"default", "follows all"} {
					name := fmt.Sprintf("%v/%d to %s/%s client", style, status, where, clientPolicy)
					t.Run(name, func(t *testing.T) {
						mock := httpmock.NewMockTransport()
						mock.RegisterResponder(http.MethodPost, tokenURL, func(r *http.Request) (*http.Response, error) {
							resp := httpmock.NewStringResponse(status, "")
							resp.Header.Set("Location", target)
							return resp, nil
						})
						// Whatever the redirect would reach answers with a
						// token, so that following it would succeed.
						mock.RegisterNoResponder(
							httpmock.NewStringResponder(200, `{"access_token":"stolen-token-1","token_type":"Bearer","expires_in":3600}`))
						client := &http.Client{Transport: mock}
						if clientPolicy == "follows all" {
							client.CheckRedirect = follow
						}
						o, err := NewOAuth2(OAuth2Config{ClientID: "id", ClientSecret: "TOPSECRET", TokenURL: tokenURL, AuthStyle: style, HTTPClient: client})
						if err != nil {
							t.Fatal(err)
						}
						_, err = o.GetToken(context.Background(), "s")
						var oe *OAuth2Error
						if !errors.As(err, &oe) || oe.StatusCode != status {
							t.Fatalf("err = %v; want an *OAuth2Error with status %d", err, status)
						}
						// A 3xx says nothing about the auth style: Auto does not
						// try the form either.
						const want = 1
						if got := mock.GetCallCountInfo()["POST "+tokenURL]; got != want || mock.GetTotalCallCount() != want {
							t.Fatalf("requests: got %d to the token URL of %d in all (%v); want %d, none elsewhere",
								got, mock.GetTotalCallCount(), mock.GetCallCountInfo(), want)
						}
						// The caller's client is the caller's: NewOAuth2
						// works on a copy.
						if changed := (clientPolicy == "default") != (client.CheckRedirect == nil) ||
							client.CheckRedirect != nil && client.CheckRedirect(nil, nil) != nil; changed {
							t.Fatalf("NewOAuth2 changed the caller's client's redirect policy")
						}
					})
				}
			}
		}
	}
}

// A server that echoes the secret JSON-escaped with \/, as PHP's
// json_encode does, must not get it into the error.
func TestOAuth2ScrubsSlashEscapedSecret(t *testing.T) {
	const secret = "ab/cd+ef/gh"
	mock := httpmock.NewMockTransport()
	mock.RegisterResponder(http.MethodPost, "https://idp.example/token", func(r *http.Request) (*http.Response, error) {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		esc := strings.ReplaceAll(r.PostForm.Get("client_secret"), "/", `\/`)
		resp := httpmock.NewStringResponse(http.StatusBadRequest,
			fmt.Sprintf(`{"error":"invalid_client","error_description":"bad secret %s","client_secret":"%s"}`, esc, esc))
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
	o, err := NewOAuth2(OAuth2Config{ClientID: "id", ClientSecret: secret, TokenURL: "https://idp.example/token",
		AuthStyle: AuthStyleParams, HTTPClient: &http.Client{Transport: mock}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.GetToken(context.Background(), "s")
	var oe *OAuth2Error
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v; want *OAuth2Error", err)
	}
	if !strings.Contains(oe.Description, "bad secret REDACTED") {
		t.Errorf("Description: got %q; want the echoed secret replaced by REDACTED", oe.Description)
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), string(oe.Body), oe.Description} {
		if strings.Contains(s, `ab\/cd`) || strings.Contains(s, "ab/cd") || strings.Contains(s, url.QueryEscape(secret)) {
			t.Fatalf("the secret got through: %s", s)
		}
	}
}
