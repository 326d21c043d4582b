package credential

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// scopeRoundTripper is an in-process token endpoint: it decodes the form
// of each token request as a server would, and answers with a token.
type scopeRoundTripper struct{ forms []url.Values }

func (s *scopeRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	s.forms = append(s.forms, r.PostForm)
	body := `{"access_token":"scope-fuzz-token","token_type":"Bearer","expires_in":3600}`
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: r,
	}, nil
}

// FuzzOAuth2Scope checks how a scope becomes the scope form field: what a
// server decodes is strings.Fields(scope) joined by single spaces, or no
// field at all when that is empty; extra EndpointParams cannot change the
// grant, the scope or the client's credentials; the secret goes only where
// the auth style puts it.
func FuzzOAuth2Scope(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"api://llm/.default", "https://llm.example.com"}, {"  read\twrite\n admin ", ""},
		{"a+b&c=d%20e", "x&scope=admin"}, {"\u00a0nbsp\u2003em\u0085nel", "aud"}, {"ütf-8 \xff", "\x00"},
		{"scope", "client_secret=stolen"},
	} {
		f.Add(s[0], s[1], uint8(0))
	}
	const secret = "scope-fuzz-secret"
	f.Fuzz(func(t *testing.T, scope, audience string, style uint8) {
		rt := &scopeRoundTripper{}
		o, err := NewOAuth2(OAuth2Config{
			ClientID: "scope-client", ClientSecret: secret, TokenURL: "https://idp.example/token",
			AuthStyle:      AuthStyle(style % 3),
			EndpointParams: url.Values{"audience": {audience}},
			HTTPClient:     &http.Client{Transport: rt},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Join(strings.Fields(scope), " ")

		form := o.form(scope)
		if got := form["scope"]; want == "" && got != nil || want != "" && !slices.Equal(got, []string{want}) {
			t.Fatalf("form(%q) scope = %q; want %q", scope, got, want)
		}
		if form.Get("grant_type") != "client_credentials" || form.Has("client_id") || form.Has("client_secret") {
			t.Fatalf("form(%q) = %v; want the grant type and no client credentials", scope, form)
		}

		tok, err := o.GetToken(context.Background(), scope)
		if err != nil || tok.Token != "scope-fuzz-token" {
			t.Fatalf("GetToken(%q) = %v, %v", scope, tok, err)
		}
		sent := rt.forms[len(rt.forms)-1]
		if got := sent["scope"]; want == "" && got != nil || want != "" && !slices.Equal(got, []string{want}) {
			t.Fatalf("the server decoded scope %q from %q; want %q", got, scope, want)
		}
		if got := sent["audience"]; !slices.Equal(got, []string{audience}) {
			t.Fatalf("the server decoded audience %q; want %q", got, audience)
		}
		if sent.Get("grant_type") != "client_credentials" || len(sent["grant_type"]) != 1 {
			t.Fatalf("the server decoded grant_type %q", sent["grant_type"])
		}
		if secrets := sent["client_secret"]; len(secrets) > 1 || len(secrets) == 1 && secrets[0] != secret {
			t.Fatalf("the server decoded client_secret %q", secrets)
		}
		for _, tokenField := range strings.Fields(sent.Get("scope")) {
			if strings.ContainsAny(tokenField, " \t\n") {
				t.Fatalf("scope token %q holds white space", tokenField)
			}
		}
	})
}

// FuzzAzureADScope checks that a scope reaches an azidentity credential as
// strings.Fields(scope), that an empty one is refused without a call, and
// that the token's times are carried over.
func FuzzAzureADScope(f *testing.F) {
	for _, s := range []string{"", " ", "https://cognitiveservices.azure.com/.default", "a b\tc\n", "\u00a0x\u2028y", "\xff"} {
		f.Add(s)
	}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, scope string) {
		var got []string
		calls := 0
		a := newAzureAD(fakeAzCred{getToken: func(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
			calls++
			got = opts.Scopes
			return azcore.AccessToken{Token: "az", ExpiresOn: expires, RefreshOn: expires.Add(-time.Minute)}, nil
		}}, func() (azcore.TokenCredential, error) { return nil, errors.New("no default credential in a test") })
		tok, err := a.GetToken(context.Background(), scope)
		want := strings.Fields(scope)
		if len(want) == 0 {
			if err == nil || calls != 0 {
				t.Fatalf("GetToken(%q): err %v after %d calls; want an error and no call", scope, err, calls)
			}
			return
		}
		if err != nil || calls != 1 || !slices.Equal(got, want) {
			t.Fatalf("GetToken(%q): scopes %q, err %v; want %q", scope, got, err, want)
		}
		if !tok.ExpiresOn.Equal(expires) || !tok.RefreshOn.Equal(expires.Add(-time.Minute)) {
			t.Fatalf("times not carried over: %v", tok)
		}
	})
}
