package credential_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
)

// The client of the fake token endpoints. The secret has characters that
// change under form-urlencoding, so that every encoded form can be checked.
const (
	testClientID = "app 123"
	testSecret   = "Very$ecret+Value/42=="
)

// secretForms are the forms in which a server could echo testSecret.
var secretForms = []string{
	testSecret,
	url.QueryEscape(testSecret),
	url.PathEscape(testSecret),
	base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(testClientID) + ":" + url.QueryEscape(testSecret))),
	base64.StdEncoding.EncodeToString([]byte(testClientID + ":" + testSecret)),
}

// seenRequest is what a fake token endpoint received.
type seenRequest struct {
	authorization string
	form          url.Values
}

// tokenEndpoint is a fake token endpoint on loopback that records the
// requests it gets and answers with handle; n counts from 1.
type tokenEndpoint struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newTokenEndpoint(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *tokenEndpoint {
	t.Helper()
	e := &tokenEndpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		e.mu.Lock()
		e.seen = append(e.seen, seenRequest{authorization: r.Header.Get("Authorization"), form: r.PostForm})
		n := len(e.seen)
		e.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad method or content type", http.StatusMethodNotAllowed)
			return
		}
		handle(w, r, n)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *tokenEndpoint) requests() []seenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

func (e *tokenEndpoint) tokenURL() string { return e.URL + "/oauth2/token" }

// newTestOAuth2 returns an OAuth2 for e with testClientID and testSecret.
func newTestOAuth2(t *testing.T, e *tokenEndpoint, style credential.AuthStyle, params url.Values) *credential.OAuth2 {
	t.Helper()
	o, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:       testClientID,
		ClientSecret:   testSecret,
		TokenURL:       e.tokenURL(),
		AuthStyle:      style,
		EndpointParams: params,
		HTTPClient:     e.Client(),
	})
	if err != nil {
		t.Fatalf("NewOAuth2: got error %v; want none", err)
	}
	return o
}

// checkNoLeak fails the test if any text of err contains the client secret
// in any form, or one of the given issued tokens.
func checkNoLeak(t *testing.T, err error, issued ...string) {
	t.Helper()
	if err == nil {
		return
	}
	texts := map[string]string{
		"Error()": err.Error(),
		"%v":      fmt.Sprintf("%v", err),
		"%+v":     fmt.Sprintf("%+v", err),
		"%#v":     fmt.Sprintf("%#v", err),
	}
	var oe *credential.OAuth2Error
	if errors.As(err, &oe) {
		texts["OAuth2Error.Error()"] = oe.Error()
		texts["OAuth2Error %+v"] = fmt.Sprintf("%+v", *oe)
		texts["Code"] = oe.Code
		texts["Description"] = oe.Description
		texts["URI"] = oe.URI
		texts["Body"] = string(oe.Body)
	}
	for where, text := range texts {
		for _, s := range append(slices.Clone(secretForms), issued...) {
			if strings.Contains(text, s) {
				t.Errorf("%s of the error contains %q: %s", where, s, text)
			}
		}
	}
}

// fakeJWT returns an unsigned JWT with the given exp claim.
func fakeJWT(exp int64) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString(fmt.Appendf(nil, `{"sub":"svc","exp":%d}`, exp)) + "." +
		enc.EncodeToString([]byte("not-a-real-signature"))
}

// answer writes a fixed answer.
func answer(status int, header map[string]string, body string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

const jsonType = "application/json"

func TestOAuth2Answers(t *testing.T) {
	t.Parallel()
	now := time.Now()
	jwtExp := now.Add(10 * time.Minute).Unix()
	jwt := fakeJWT(jwtExp)
	expiredJWT := fakeJWT(now.Add(-time.Minute).Unix())
	const issued = "issued-token-0123456789"
	hugeJSON := `{"access_token":"` + strings.Repeat("a", 10<<20) + `"}`
	hugeHTML := "<html><body>" + strings.Repeat("<p>error</p>", (10<<20)/12) + "</body></html>"
	errorPage := `<!DOCTYPE html><html><head><title>500 Internal Server Error</title>` +
		`<style>body{color:red}</style></head><body><h1>Oops &amp; sorry</h1>` +
		"\n\n  <p>Something   broke.</p></body></html>"

	type want struct {
		lifetime  time.Duration // success: ExpiresOn - now, to the second
		expiresOn time.Time     // success: exact ExpiresOn, when set
		oe        *credential.OAuth2Error
		bodyLen   int      // with oe: len(Body) when not zero, else Body must equal the answer
		msg       []string // substrings of err.Error()
		notOE     bool     // an error that is not an *OAuth2Error
	}
	tests := []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request, int)
		issued []string // tokens in the answer that must not leak
		want   want
	}{
		{
			name:   "400 invalid_scope",
			handle: answer(400, map[string]string{"Content-Type": jsonType}, `{"error":"invalid_scope","error_description":"scope \"x\" is unknown","error_uri":"https://idp.example/errors/scope"}`),
			want: want{oe: &credential.OAuth2Error{StatusCode: 400, Code: "invalid_scope", Description: `scope "x" is unknown`, URI: "https://idp.example/errors/scope"},
				msg: []string{"400 Bad Request: invalid_scope", `"scope \"x\" is unknown"`, "(see https://idp.example/errors/scope)"}},
		},
		{
			name:   "400 invalid_request",
			handle: answer(400, map[string]string{"Content-Type": jsonType}, `{"error":"invalid_request","error_description":"grant_type is missing"}`),
			want:   want{oe: &credential.OAuth2Error{StatusCode: 400, Code: "invalid_request", Description: "grant_type is missing"}, msg: []string{"400 Bad Request: invalid_request"}},
		},
		{
			name:   "401 invalid_client as JSON",
			handle: answer(401, map[string]string{"Content-Type": jsonType}, `{"error":"invalid_client","error_description":"Client authentication failed"}`),
			want:   want{oe: &credential.OAuth2Error{StatusCode: 401, Code: "invalid_client", Description: "Client authentication failed"}, msg: []string{"401 Unauthorized: invalid_client"}},
		},
		{
			name:   "401 with only a WWW-Authenticate header",
			handle: answer(401, map[string]string{"WWW-Authenticate": `Basic realm="token", error="invalid_client", error_description="unknown \"client\""`}, ""),
			want:   want{oe: &credential.OAuth2Error{StatusCode: 401, Code: "invalid_client", Description: `unknown "client"`}, msg: []string{"401 Unauthorized: invalid_client"}},
		},
		{
			name:   "401 with a WWW-Authenticate header without error",
			handle: answer(401, map[string]string{"WWW-Authenticate": `Basic realm="token"`}, ""),
			want:   want{oe: &credential.OAuth2Error{StatusCode: 401, Code: "invalid_client"}, msg: []string{"401 Unauthorized: invalid_client"}},
		},
		{
			name:   "401 with a WWW-Authenticate error of its own",
			handle: answer(401, map[string]string{"WWW-Authenticate": `Bearer error=unauthorized_client, error_uri="https://idp.example/e"`}, ""),
			want:   want{oe: &credential.OAuth2Error{StatusCode: 401, Code: "unauthorized_client", URI: "https://idp.example/e"}},
		},
		{
			name:   "429 with Retry-After",
			handle: answer(429, map[string]string{"Retry-After": "30", "Content-Type": "text/plain"}, "Too Many Requests\n"),
			want: want{oe: &credential.OAuth2Error{StatusCode: 429, Description: "Too Many Requests"},
				msg: []string{"429 Too Many Requests, not an OAuth2 error answer", "Retry-After: 30s"}},
		},
		{
			name:   "503 with a Retry-After date and a JSON error",
			handle: answer(503, map[string]string{"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT", "Content-Type": jsonType}, `{"error":"temporarily_unavailable"}`),
			want: want{oe: &credential.OAuth2Error{StatusCode: 503, Code: "temporarily_unavailable"},
				msg: []string{"503 Service Unavailable: temporarily_unavailable", "Retry-After: Wed, 21 Oct 2037 07:28:00 GMT"}},
		},
		{
			name:   "500 with an HTML page",
			handle: answer(500, map[string]string{"Content-Type": "text/html; charset=utf-8"}, errorPage),
			want: want{oe: &credential.OAuth2Error{StatusCode: 500, Description: "500 Internal Server Error Oops & sorry Something broke."},
				msg: []string{`500 Internal Server Error, not an OAuth2 error answer: "500 Internal Server Error Oops & sorry Something broke."`}},
		},
		{
			name:   "200 with an error field",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"error":"access_denied","error_description":"client is disabled"}`),
			want:   want{oe: &credential.OAuth2Error{StatusCode: 200, Code: "access_denied", Description: "client is disabled"}, msg: []string{"200 OK: access_denied"}},
		},
		{
			name:   "200 with an error field and a token",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"error":"server_error","access_token":"`+issued+`"}`),
			issued: []string{issued},
			want: want{oe: &credential.OAuth2Error{StatusCode: 200, Code: "server_error"}, bodyLen: len(`{"error":"server_error","access_token":"REDACTED"}`),
				msg: []string{"200 OK: server_error"}},
		},
		{
			name:   "200 without access_token",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"token_type":"Bearer","expires_in":3600}`),
			want:   want{notOE: true, msg: []string{"200 OK without an access_token"}},
		},
		{
			name:   "200 with truncated JSON",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+issued+`","token_type":"Bea`),
			issued: []string{issued},
			want:   want{notOE: true, msg: []string{"200 OK with invalid JSON: unexpected EOF"}},
		},
		{
			name:   "200 with a 10 MB body",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, hugeJSON),
			want:   want{notOE: true, msg: []string{"200 OK with more than 1048576 bytes"}},
		},
		{
			name:   "400 with a 10 MB body",
			handle: answer(400, map[string]string{"Content-Type": "text/html"}, hugeHTML),
			want: want{oe: &credential.OAuth2Error{StatusCode: 400, Description: strings.TrimSpace(strings.Repeat("error ", 200/6+1))[:200] + "..."},
				bodyLen: 4096, msg: []string{"400 Bad Request, not an OAuth2 error answer"}},
		},
		{
			name:   "200 with an HTML page",
			handle: answer(200, map[string]string{"Content-Type": "text/html"}, `<html><title>Proxy sign-in</title><body>Please sign in</body></html>`),
			want:   want{notOE: true, msg: []string{`200 OK with a text/html body, not a JSON token answer: "Proxy sign-in Please sign in"`}},
		},
		{
			name:   "expires_in as a string",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"tok","token_type":"Bearer","expires_in":"3600"}`),
			want:   want{lifetime: time.Hour},
		},
		{
			name:   "expires_in as a number",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"tok","token_type":"bearer","expires_in":3600}`),
			want:   want{lifetime: time.Hour},
		},
		{
			name:   "no expires_in, a JWT",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+jwt+`","token_type":"Bearer"}`),
			want:   want{expiresOn: time.Unix(jwtExp, 0)},
		},
		{
			name:   "no expires_in, an opaque token",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"opaque","token_type":"Bearer","expires_in":null}`),
			want:   want{lifetime: time.Hour},
		},
		{
			name:   "no expires_in, an expired JWT",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+expiredJWT+`"}`),
			issued: []string{expiredJWT},
			want:   want{notOE: true, msg: []string{"no expires_in and a JWT access token that expired at"}},
		},
		{
			name:   "no token_type, a form-encoded answer",
			handle: answer(200, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "access_token=tok&expires_in=60"),
			want:   want{lifetime: time.Minute},
		},
		{
			name:   "expires_in 0",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+issued+`","token_type":"Bearer","expires_in":0}`),
			issued: []string{issued},
			want:   want{notOE: true, msg: []string{`expires_in "0": a token that is already expired`}},
		},
		{
			name:   "expires_in -5",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+issued+`","token_type":"Bearer","expires_in":-5}`),
			issued: []string{issued},
			want:   want{notOE: true, msg: []string{`expires_in "-5": a token that is already expired`}},
		},
		{
			name:   "expires_in not a number",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+issued+`","expires_in":"soon"}`),
			issued: []string{issued},
			want:   want{notOE: true, msg: []string{`expires_in "soon", not a number`}},
		},
		{
			name:   "token_type DPoP",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+issued+`","token_type":"DPoP","expires_in":3600}`),
			issued: []string{issued},
			want:   want{notOE: true, msg: []string{`token_type "DPoP", not Bearer`, "DPoP proof"}},
		},
		{
			name:   "token_type mac",
			handle: answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"`+issued+`","token_type":"mac","expires_in":3600}`),
			issued: []string{issued},
			want:   want{notOE: true, msg: []string{`token_type "mac", not Bearer`}},
		},
		{
			name: "secret echoed in error_description",
			handle: func(w http.ResponseWriter, r *http.Request, _ int) {
				body, _ := json.Marshal(map[string]string{
					"error":             "invalid_client",
					"error_description": "secret " + testSecret + " and header " + r.Header.Get("Authorization") + " are wrong",
					"error_uri":         "https://idp.example/e?secret=" + url.QueryEscape(testSecret),
				})
				w.Header().Set("Content-Type", jsonType)
				w.WriteHeader(401)
				_, _ = w.Write(body)
			},
			want: want{oe: &credential.OAuth2Error{StatusCode: 401, Code: "invalid_client",
				Description: "secret REDACTED and header Basic REDACTED are wrong", URI: "https://idp.example/e?secret=REDACTED"},
				bodyLen: len(`{"error":"invalid_client","error_description":"secret REDACTED and header Basic REDACTED are wrong","error_uri":"https://idp.example/e?secret=REDACTED"}`)},
		},
		{
			name: "form echoed in an HTML page",
			handle: func(w http.ResponseWriter, r *http.Request, _ int) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(502)
				_, _ = fmt.Fprintf(w, "<p>bad request: %s</p>", r.Form.Encode())
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenEndpoint(t, tt.handle)
			style := credential.AuthStyleHeader
			if tt.name == "form echoed in an HTML page" {
				style = credential.AuthStyleParams
			}
			o := newTestOAuth2(t, e, style, nil)
			before := time.Now()
			tok, err := o.GetToken(context.Background(), "api.read")
			after := time.Now()
			checkNoLeak(t, err, tt.issued...)
			w := tt.want
			if w.lifetime == 0 && w.expiresOn.IsZero() && w.oe == nil && !w.notOE {
				// Only the leak check applies.
				if err == nil {
					t.Fatalf("GetToken: got token %v; want an error", tok)
				}
				return
			}
			if w.lifetime != 0 || !w.expiresOn.IsZero() {
				if err != nil {
					t.Fatalf("GetToken: got error %v; want a token", err)
				}
				if tok.Token == "" {
					t.Errorf("Token: got empty; want the issued token")
				}
				if !w.expiresOn.IsZero() && !tok.ExpiresOn.Equal(w.expiresOn) {
					t.Errorf("ExpiresOn: got %v; want %v", tok.ExpiresOn, w.expiresOn)
				}
				if w.lifetime != 0 {
					lo, hi := before.Add(w.lifetime), after.Add(w.lifetime)
					if tok.ExpiresOn.Before(lo) || tok.ExpiresOn.After(hi) {
						t.Errorf("ExpiresOn: got %v; want between %v and %v", tok.ExpiresOn, lo, hi)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("GetToken: got token %v; want an error", tok)
			}
			if tok != (credential.AccessToken{}) {
				t.Errorf("token with the error: got %v; want the zero AccessToken", tok)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `credential: OAuth2 token request to `+e.tokenURL()+` for client_id "app 123": `) {
				t.Errorf("error: got %q; want it to name the token URL and the client ID first", msg)
			}
			for _, s := range w.msg {
				if !strings.Contains(msg, s) {
					t.Errorf("error: got %q; want it to contain %q", msg, s)
				}
			}
			var oe *credential.OAuth2Error
			isOE := errors.As(err, &oe)
			if w.notOE {
				if isOE {
					t.Errorf("errors.As(*OAuth2Error): got %+v; want false", oe)
				}
				return
			}
			if !isOE {
				t.Fatalf("errors.As(*OAuth2Error): got false for %v; want true", err)
			}
			if oe.StatusCode != w.oe.StatusCode || oe.Code != w.oe.Code || oe.Description != w.oe.Description || oe.URI != w.oe.URI {
				t.Errorf("OAuth2Error: got {%d %q %q %q}; want {%d %q %q %q}",
					oe.StatusCode, oe.Code, oe.Description, oe.URI, w.oe.StatusCode, w.oe.Code, w.oe.Description, w.oe.URI)
			}
			if w.bodyLen != 0 && len(oe.Body) != w.bodyLen {
				t.Errorf("len(Body): got %d; want %d", len(oe.Body), w.bodyLen)
			}
		})
	}
}

func TestOAuth2ContextDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	e := newTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	o := newTestOAuth2(t, e, credential.AuthStyleAuto, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := o.GetToken(ctx, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetToken: got error %v; want context.DeadlineExceeded", err)
	}
	checkNoLeak(t, err)
	// Under load the deadline may pass before the request is sent.
	if got := len(e.requests()); got > 1 {
		t.Errorf("token requests: got %d; want at most 1 (Auto does not retry after a network error)", got)
	}
}

func TestOAuth2ContextCanceled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	e := newTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	o := newTestOAuth2(t, e, credential.AuthStyleAuto, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := o.GetToken(ctx, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GetToken: got error %v; want context.Canceled", err)
	}
	checkNoLeak(t, err)
	if got := len(e.requests()); got != 1 {
		t.Errorf("token requests: got %d; want 1 (Auto does not retry after a network error)", got)
	}
}

func TestOAuth2WhatTheServerReceives(t *testing.T) {
	t.Parallel()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("app+123:Very%24ecret%2BValue%2F42%3D%3D"))
	tests := []struct {
		name     string
		style    credential.AuthStyle
		scope    string
		params   url.Values
		wantAuth string
		wantForm url.Values
	}{
		{
			name: "header", style: credential.AuthStyleHeader, scope: "read  write",
			wantAuth: basic,
			wantForm: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}},
		},
		{
			name: "params", style: credential.AuthStyleParams, scope: "read",
			wantForm: url.Values{"grant_type": {"client_credentials"}, "scope": {"read"},
				"client_id": {testClientID}, "client_secret": {testSecret}},
		},
		{
			name: "empty scope omitted", style: credential.AuthStyleHeader, scope: " \t",
			wantAuth: basic,
			wantForm: url.Values{"grant_type": {"client_credentials"}},
		},
		{
			name: "audience and resource", style: credential.AuthStyleParams,
			params: url.Values{"audience": {"https://api.example.com"}, "resource": {"https://r1", "https://r2"}},
			wantForm: url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}, "client_secret": {testSecret},
				"audience": {"https://api.example.com"}, "resource": {"https://r1", "https://r2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenEndpoint(t, answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"tok","token_type":"Bearer","expires_in":60}`))
			o := newTestOAuth2(t, e, tt.style, tt.params)
			if _, err := o.GetToken(context.Background(), tt.scope); err != nil {
				t.Fatalf("GetToken: got error %v; want none", err)
			}
			reqs := e.requests()
			if len(reqs) != 1 {
				t.Fatalf("requests: got %d; want 1", len(reqs))
			}
			if got := reqs[0].authorization; got != tt.wantAuth {
				t.Errorf("Authorization: got %q; want %q", got, tt.wantAuth)
			}
			if got := reqs[0].form; !equalValues(got, tt.wantForm) {
				t.Errorf("form: got %v; want %v", got, tt.wantForm)
			}
		})
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestOAuth2EndpointParamsCannotOverride(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"grant_type", "client_id", "client_secret", "scope"} {
		t.Run(key, func(t *testing.T) {
			params := url.Values{key: {"override"}, "audience": {"a"}}
			_, err := credential.NewOAuth2(credential.OAuth2Config{
				ClientID: testClientID, ClientSecret: testSecret, TokenURL: "https://idp.example/token", EndpointParams: params,
			})
			if err == nil || !strings.Contains(err.Error(), "EndpointParams") || !strings.Contains(err.Error(), key) {
				t.Errorf("NewOAuth2: got error %v; want one naming EndpointParams and %q", err, key)
			}
		})
	}
	t.Run("later changes of the map", func(t *testing.T) {
		e := newTokenEndpoint(t, answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"tok"}`))
		params := url.Values{"audience": {"a"}}
		o := newTestOAuth2(t, e, credential.AuthStyleHeader, params)
		params.Set("grant_type", "password")
		params.Set("scope", "admin")
		params.Set("client_secret", "other")
		if _, err := o.GetToken(context.Background(), ""); err != nil {
			t.Fatalf("GetToken: got error %v; want none", err)
		}
		want := url.Values{"grant_type": {"client_credentials"}, "audience": {"a"}}
		if got := e.requests()[0].form; !equalValues(got, want) {
			t.Errorf("form: got %v; want %v", got, want)
		}
	})
}

func TestOAuth2AuthStyleAuto(t *testing.T) {
	t.Parallel()
	okBody := `{"access_token":"tok","token_type":"Bearer","expires_in":60}`
	tests := []struct {
		name string
		// handle answers a request with Basic and one with form fields.
		basic, form func(http.ResponseWriter)
		calls       int
		wantStyles  []string // "basic" or "form", per request
		wantCode    string   // of the last call's error; "" for success
	}{
		{
			name:       "Basic refused, form works and is remembered",
			basic:      writeAnswer(401, `{"error":"invalid_client"}`),
			form:       writeAnswer(200, okBody),
			calls:      2,
			wantStyles: []string{"basic", "form", "form"},
		},
		{
			name:       "Basic works and is remembered",
			basic:      writeAnswer(200, okBody),
			form:       writeAnswer(500, `{"error":"server_error"}`),
			calls:      2,
			wantStyles: []string{"basic", "basic"},
		},
		{
			name:       "both fail: the second error",
			basic:      writeAnswer(401, `{"error":"invalid_client","error_description":"basic"}`),
			form:       writeAnswer(400, `{"error":"invalid_request","error_description":"form"}`),
			calls:      2,
			wantStyles: []string{"basic", "form", "basic", "form"},
			wantCode:   "invalid_request",
		},
		{
			name:       "503 is not a reason to try the form",
			basic:      writeAnswer(503, `{"error":"temporarily_unavailable"}`),
			form:       writeAnswer(200, okBody),
			calls:      1,
			wantStyles: []string{"basic"},
			wantCode:   "temporarily_unavailable",
		},
		{
			name:       "429 is not a reason to try the form",
			basic:      writeAnswer(429, `{"error":"slow_down"}`),
			form:       writeAnswer(200, okBody),
			calls:      1,
			wantStyles: []string{"basic"},
			wantCode:   "slow_down",
		},
		{
			name:       "200 with an error field is",
			basic:      writeAnswer(200, `{"error":"unauthorized_client"}`),
			form:       writeAnswer(200, okBody),
			calls:      1,
			wantStyles: []string{"basic", "form"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				w.Header().Set("Content-Type", jsonType)
				if r.Header.Get("Authorization") != "" {
					tt.basic(w)
				} else {
					tt.form(w)
				}
			})
			o := newTestOAuth2(t, e, credential.AuthStyleAuto, nil)
			var err error
			for range tt.calls {
				_, err = o.GetToken(context.Background(), "")
			}
			checkNoLeak(t, err)
			var styles []string
			for _, r := range e.requests() {
				switch {
				case r.authorization != "" && r.form.Has("client_secret"):
					styles = append(styles, "both")
				case r.authorization != "":
					styles = append(styles, "basic")
				case r.form.Get("client_secret") == testSecret && r.form.Get("client_id") == testClientID:
					styles = append(styles, "form")
				default:
					styles = append(styles, "none")
				}
			}
			if !slices.Equal(styles, tt.wantStyles) {
				t.Errorf("requests: got %v; want %v", styles, tt.wantStyles)
			}
			if tt.wantCode == "" {
				if err != nil {
					t.Errorf("last GetToken: got error %v; want none", err)
				}
				return
			}
			var oe *credential.OAuth2Error
			if !errors.As(err, &oe) || oe.Code != tt.wantCode {
				t.Errorf("last GetToken: got error %v; want an *OAuth2Error with code %q", err, tt.wantCode)
			}
		})
	}
}

func writeAnswer(status int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestOAuth2AutoNoFallbackOnNetworkError(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		// Drop the connection without an answer.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	o := newTestOAuth2(t, e, credential.AuthStyleAuto, nil)
	_, err := o.GetToken(context.Background(), "")
	var oe *credential.OAuth2Error
	if err == nil || errors.As(err, &oe) {
		t.Fatalf("GetToken: got error %v; want a network error", err)
	}
	checkNoLeak(t, err)
	if got := len(e.requests()); got != 1 {
		t.Errorf("token requests: got %d; want 1", got)
	}
}

func TestOAuth2Concurrent(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", jsonType)
		if r.Header.Get("Authorization") != "" {
			writeAnswer(401, `{"error":"invalid_client"}`)(w)
			return
		}
		writeAnswer(200, fmt.Sprintf(`{"access_token":"tok-%d","expires_in":60}`, n))(w)
	})
	o := newTestOAuth2(t, e, credential.AuthStyleAuto, nil)
	const callers = 50
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if _, err := o.GetToken(context.Background(), "s"); err != nil {
				t.Errorf("GetToken: got error %v; want none", err)
			}
		})
	}
	wg.Wait()
	// Every call succeeds; callers that started before the style was
	// learned probe with Basic once each.
	reqs := e.requests()
	form := 0
	for _, r := range reqs {
		if r.authorization == "" {
			form++
		}
	}
	if form != callers {
		t.Errorf("requests with form fields: got %d; want %d", form, callers)
	}
	if len(reqs) > 2*callers {
		t.Errorf("requests: got %d; want at most %d", len(reqs), 2*callers)
	}
}

func TestNewOAuth2Validates(t *testing.T) {
	t.Parallel()
	ok := credential.OAuth2Config{ClientID: "id", ClientSecret: "s3cr3t-Val", TokenURL: "https://idp.example/oauth2/token"}
	tests := []struct {
		name    string
		change  func(*credential.OAuth2Config)
		wantErr string // substring; "" for no error
	}{
		{"valid", func(*credential.OAuth2Config) {}, ""},
		{"no ClientID", func(c *credential.OAuth2Config) { c.ClientID = "" }, "ClientID is required"},
		{"no ClientSecret", func(c *credential.OAuth2Config) { c.ClientSecret = "" }, "ClientSecret is required"},
		{"no TokenURL", func(c *credential.OAuth2Config) { c.TokenURL = "" }, "TokenURL is required"},
		{"TokenURL does not parse", func(c *credential.OAuth2Config) { c.TokenURL = "https://idp.example/%zz" }, "TokenURL does not parse"},
		{"TokenURL relative", func(c *credential.OAuth2Config) { c.TokenURL = "/oauth2/token" }, "TokenURL"},
		{"TokenURL ftp", func(c *credential.OAuth2Config) { c.TokenURL = "ftp://idp.example/token" }, "TokenURL"},
		{"TokenURL http to a remote host", func(c *credential.OAuth2Config) { c.TokenURL = "http://idp.example/token" }, "TokenURL"},
		{"TokenURL http to 10.0.0.1", func(c *credential.OAuth2Config) { c.TokenURL = "http://10.0.0.1/token" }, "TokenURL"},
		{"TokenURL with user info", func(c *credential.OAuth2Config) { c.TokenURL = "https://u:p@idp.example/token" }, "TokenURL must not contain user info"},
		{"TokenURL http to localhost", func(c *credential.OAuth2Config) { c.TokenURL = "http://localhost:8080/token" }, ""},
		{"TokenURL http to LOCALHOST", func(c *credential.OAuth2Config) { c.TokenURL = "http://LOCALHOST/token" }, ""},
		{"TokenURL http to 127.0.0.2", func(c *credential.OAuth2Config) { c.TokenURL = "http://127.0.0.2:9/token" }, ""},
		{"TokenURL http to ::1", func(c *credential.OAuth2Config) { c.TokenURL = "http://[::1]:9/token" }, ""},
		{"TokenURL with a query", func(c *credential.OAuth2Config) { c.TokenURL = "https://idp.example/token?api-version=2" }, ""},
		{"AuthStyle out of range", func(c *credential.OAuth2Config) { c.AuthStyle = 7 }, "AuthStyle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			o, err := credential.NewOAuth2(cfg)
			if tt.wantErr == "" {
				if err != nil || o == nil {
					t.Errorf("NewOAuth2: got %v, %v; want an OAuth2, nil", o, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "credential: OAuth2Config.") {
				t.Errorf("NewOAuth2: got error %v; want one naming the field with %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), ok.ClientSecret) {
				t.Errorf("error %q contains the client secret", err)
			}
		})
	}
}

func TestOAuth2NilHTTPClient(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"tok","expires_in":60}`))
	o, err := credential.NewOAuth2(credential.OAuth2Config{ClientID: testClientID, ClientSecret: testSecret, TokenURL: e.tokenURL()})
	if err != nil {
		t.Fatalf("NewOAuth2: got error %v; want none", err)
	}
	tok, err := o.GetToken(context.Background(), "")
	if err != nil || tok.Token != "tok" {
		t.Errorf("GetToken: got %v, %v; want the token, nil", tok, err)
	}
}

func TestOAuth2PrintsNoSecret(t *testing.T) {
	t.Parallel()
	cfg := credential.OAuth2Config{
		ClientID:       testClientID,
		ClientSecret:   testSecret,
		TokenURL:       "https://idp.example/token?tenant=a",
		EndpointParams: url.Values{"audience": {"https://api"}},
	}
	o, err := credential.NewOAuth2(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
		texts = append(texts,
			fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg), fmt.Sprintf(verb, o),
			fmt.Sprintf(verb, struct{ C credential.OAuth2Config }{cfg}),
			fmt.Sprintf(verb, []any{cfg, o}))
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", cfg, "o", o)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", cfg, "o", o)
	texts = append(texts, buf.String(), cfg.String(), o.String())
	for _, text := range texts {
		for _, s := range secretForms {
			if strings.Contains(text, s) {
				t.Errorf("printed %q contains the secret", text)
			}
		}
	}
	if want := `credential.OAuth2Config{ClientID:"app 123" ClientSecret:REDACTED TokenURL:"https://idp.example/token" AuthStyle:Auto EndpointParams:[audience] HTTPClient:nil}`; fmt.Sprintf("%+v", cfg) != want {
		t.Errorf("%%+v: got %s; want %s", fmt.Sprintf("%+v", cfg), want)
	}
	if want := `credential.OAuth2{ClientID:"app 123" ClientSecret:REDACTED TokenURL:"https://idp.example/token" AuthStyle:Auto EndpointParams:[audience]}`; fmt.Sprintf("%#v", o) != want {
		t.Errorf("%%#v: got %s; want %s", fmt.Sprintf("%#v", o), want)
	}
}
