package credential

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jarcoal/httpmock"
)

// The client of FuzzOAuth2Scope. Both change under form-urlencoding, and
// the secret has a colon, so that a Basic header that was not encoded as
// RFC 6749 section 2.3.1 says would not split back into the same pair.
const (
	scopeFuzzID     = "scope client/1"
	scopeFuzzSecret = "sc0pe:fuzz+secret/=%&"
)

// sentRequest is a token request as the fake endpoint received it.
type sentRequest struct {
	method string
	url    string
	header http.Header
	body   string
	form   url.Values
}

// FuzzOAuth2Scope checks how a scope becomes the scope form field: what a
// server decodes is strings.Fields(scope) joined by single spaces, or no
// field at all when that is empty; extra EndpointParams cannot change the
// grant, the scope or the client's credentials; and the secret goes only
// where the auth style puts it: for Header (and Auto, whose first try is
// Basic) a Basic header that decodes to the form-urlencoded id and secret
// and no client credentials in the form; for Params client_id and
// client_secret form fields and no Authorization header. The secret, in
// any encoding, appears nowhere else in the request.
func FuzzOAuth2Scope(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"api://llm/.default", "https://llm.example.com"}, {"  read\twrite\n admin ", ""},
		{"a+b&c=d%20e", "x&scope=admin"}, {"\u00a0nbsp\u2003em\u0085nel", "aud"}, {"ütf-8 \xff", "\x00"},
		{"scope", "client_secret=stolen"}, {"scope", "x&client_id=other&client_secret=stolen"},
	} {
		for style := range uint8(3) {
			f.Add(s[0], s[1], style)
		}
	}
	// Every form in which the secret could travel or be echoed.
	qid, qsecret := url.QueryEscape(scopeFuzzID), url.QueryEscape(scopeFuzzSecret)
	secretForms := []string{
		scopeFuzzSecret, qsecret, url.PathEscape(scopeFuzzSecret),
		base64.StdEncoding.EncodeToString([]byte(scopeFuzzSecret)),
		base64.StdEncoding.EncodeToString([]byte(qid + ":" + qsecret)),
		base64.StdEncoding.EncodeToString([]byte(scopeFuzzID + ":" + scopeFuzzSecret)),
	}
	containsSecret := func(s string) bool {
		for _, form := range secretForms {
			if strings.Contains(s, form) {
				return true
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, scope, audience string, style uint8) {
		if containsSecret(scope) || containsSecret(audience) {
			t.Skip("the fuzzed fields carry the secret themselves")
		}
		var sent []sentRequest
		mock := httpmock.NewMockTransport()
		// Every request gets the answer, so that the checks below, not
		// the mock's routing, judge where it went.
		mock.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, err
			}
			sent = append(sent, sentRequest{method: r.Method, url: r.URL.String(), header: r.Header.Clone(), body: string(body), form: form})
			resp := httpmock.NewStringResponse(http.StatusOK, `{"access_token":"scope-fuzz-token","token_type":"Bearer","expires_in":3600}`)
			resp.Header.Set("Content-Type", "application/json")
			return resp, nil
		})
		authStyle := AuthStyle(style % 3)
		o, err := NewOAuth2(OAuth2Config{
			ClientID: scopeFuzzID, ClientSecret: scopeFuzzSecret, TokenURL: "https://idp.example/token?tenant=t",
			AuthStyle:      authStyle,
			EndpointParams: url.Values{"audience": {audience}},
			HTTPClient:     &http.Client{Transport: mock},
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
		if len(sent) != 1 {
			t.Fatalf("token requests: got %d; want 1", len(sent))
		}
		req := sent[0]
		if got := req.form["scope"]; want == "" && got != nil || want != "" && !slices.Equal(got, []string{want}) {
			t.Fatalf("the server decoded scope %q from %q; want %q", got, scope, want)
		}
		if got := req.form["audience"]; !slices.Equal(got, []string{audience}) {
			t.Fatalf("the server decoded audience %q; want %q", got, audience)
		}
		if got := req.form["grant_type"]; !slices.Equal(got, []string{"client_credentials"}) {
			t.Fatalf("the server decoded grant_type %q", got)
		}
		for _, tokenField := range strings.Fields(req.form.Get("scope")) {
			if strings.ContainsAny(tokenField, " \t\n") {
				t.Fatalf("scope token %q holds white space", tokenField)
			}
		}

		// Where the client's credentials are, decoded here without the
		// package's help.
		wantKeys := []string{"audience", "grant_type"}
		if want != "" {
			wantKeys = append(wantKeys, "scope")
		}
		allowed := "" // the one header that may carry the secret
		switch authStyle {
		case AuthStyleHeader, AuthStyleAuto:
			allowed = "Authorization"
			id, secret, err := decodeBasic(req.header.Values("Authorization"))
			if err != nil {
				t.Fatalf("%v: Authorization %q: %v", authStyle, req.header.Values("Authorization"), err)
			}
			if id != scopeFuzzID || secret != scopeFuzzSecret {
				t.Fatalf("%v: Basic decodes to %q:%q; want %q:%q", authStyle, id, secret, scopeFuzzID, scopeFuzzSecret)
			}
		case AuthStyleParams:
			if v, ok := req.header["Authorization"]; ok {
				t.Fatalf("Params: Authorization header %q; want none", v)
			}
			if got := req.form["client_id"]; !slices.Equal(got, []string{scopeFuzzID}) {
				t.Fatalf("Params: the server decoded client_id %q; want %q", got, scopeFuzzID)
			}
			if got := req.form["client_secret"]; !slices.Equal(got, []string{scopeFuzzSecret}) {
				t.Fatalf("Params: the server decoded client_secret %q; want the secret once", got)
			}
			wantKeys = append(wantKeys, "client_id", "client_secret")
		}
		var keys []string
		for k := range req.form {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Sort(wantKeys)
		if !slices.Equal(keys, wantKeys) {
			t.Fatalf("%v: form fields %q; want %q", authStyle, keys, wantKeys)
		}

		// Nowhere else: not in the URL, in no other header, in no other
		// form field, and in the body only as the client_secret field.
		if containsSecret(req.url) {
			t.Fatalf("%v: the URL %q carries the secret", authStyle, req.url)
		}
		if req.method != http.MethodPost || req.url != "https://idp.example/token?tenant=t" {
			t.Fatalf("%v: request %s %s; want POST to the token URL as configured", authStyle, req.method, req.url)
		}
		for k, vs := range req.header {
			if k == allowed {
				continue
			}
			for _, v := range vs {
				if containsSecret(k) || containsSecret(v) {
					t.Fatalf("%v: header %s: %q carries the secret", authStyle, k, v)
				}
			}
		}
		for k, vs := range req.form {
			if k == "client_secret" {
				continue
			}
			for _, v := range vs {
				if containsSecret(k) || containsSecret(v) {
					t.Fatalf("%v: form field %s=%q carries the secret", authStyle, k, v)
				}
			}
		}
		body := req.body
		if authStyle == AuthStyleParams {
			body = strings.Replace(body, "client_secret="+qsecret, "", 1)
		}
		if containsSecret(body) {
			t.Fatalf("%v: the body %q carries the secret outside the client_secret field", authStyle, req.body)
		}
	})
}

// decodeBasic decodes HTTP Basic credentials as RFC 6749 section 2.3.1
// says a token endpoint does: base64 of id:secret, each form-urlencoded
// first. It uses no code of the package.
func decodeBasic(values []string) (id, secret string, err error) {
	if len(values) != 1 {
		return "", "", fmt.Errorf("%d Authorization headers; want 1", len(values))
	}
	enc, ok := strings.CutPrefix(values[0], "Basic ")
	if !ok {
		return "", "", errors.New("not Basic")
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", err
	}
	qid, qsecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("no colon")
	}
	if id, err = url.QueryUnescape(qid); err != nil {
		return "", "", err
	}
	if secret, err = url.QueryUnescape(qsecret); err != nil {
		return "", "", err
	}
	return id, secret, nil
}
