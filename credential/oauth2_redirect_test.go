package credential

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// A token endpoint that redirects must not get the client secret sent on
// to the redirect's target: net/http would resend the form on 307 and 308.
func TestOAuth2DoesNotFollowRedirects(t *testing.T) {
	for _, style := range []AuthStyle{AuthStyleHeader, AuthStyleParams, AuthStyleAuto} {
		t.Run(style.String(), func(t *testing.T) {
			var reached atomic.Int32
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"access_token":"stolen-token-1","token_type":"Bearer","expires_in":3600}`)
			}))
			defer other.Close()
			tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/steal", http.StatusTemporaryRedirect)
			}))
			defer tokenSrv.Close()
			o, err := NewOAuth2(OAuth2Config{ClientID: "id", ClientSecret: "TOPSECRET", TokenURL: tokenSrv.URL, AuthStyle: style, HTTPClient: tokenSrv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = o.GetToken(context.Background(), "s")
			var oe *OAuth2Error
			if !errors.As(err, &oe) || oe.StatusCode != http.StatusTemporaryRedirect {
				t.Fatalf("err = %v; want an *OAuth2Error with status 307", err)
			}
			if n := reached.Load(); n != 0 {
				t.Fatalf("the redirect target got %d requests; want 0", n)
			}
		})
	}
}

// A server that echoes the secret JSON-escaped with \/, as PHP's
// json_encode does, must not get it into the error.
func TestOAuth2ScrubsSlashEscapedSecret(t *testing.T) {
	const secret = "ab/cd+ef/gh"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		esc := strings.ReplaceAll(r.PostForm.Get("client_secret"), "/", `\/`)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad secret %s","client_secret":"%s"}`, esc, esc)
	}))
	defer srv.Close()
	o, err := NewOAuth2(OAuth2Config{ClientID: "id", ClientSecret: secret, TokenURL: srv.URL, AuthStyle: AuthStyleParams})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.GetToken(context.Background(), "s")
	var oe *OAuth2Error
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v; want *OAuth2Error", err)
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), string(oe.Body), oe.Description} {
		if strings.Contains(s, `ab\/cd`) || strings.Contains(s, "ab/cd") {
			t.Fatalf("the secret got through: %s", s)
		}
	}
}
