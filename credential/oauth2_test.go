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
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// The client of the fake token endpoints. The secret has characters that
// change under form-urlencoding, so that every encoded form can be checked.
const (
	testClientID = "app 123"
	testSecret   = "Very$ecret+Value/42=="
)

// The canned token endpoint. Its query must reach the server and stay out
// of messages, which name testDisplayURL.
const (
	testTokenURL   = "https://idp.example/oauth2/token?tenant=t1"
	testDisplayURL = "https://idp.example/oauth2/token"
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
	method        string
	url           string
	header        http.Header
	authorization string
	body          string
	form          url.Values // the body as a server decodes it
}

// tokenEndpoint is a canned token endpoint at testTokenURL, answered in
// process by an httpmock transport of its own: no socket, no server
// goroutine. It records the requests it gets.
type tokenEndpoint struct {
	mock *httpmock.MockTransport
	mu   sync.Mutex
	seen []seenRequest
}

// newTokenEndpoint returns an endpoint whose answer to the n-th token
// request (n counts from 1) is respond's. A request that is not a form POST
// to testTokenURL gets a 405 or an error, and fails the test.
func newTokenEndpoint(t *testing.T, respond func(r seenRequest, n int) *http.Response) *tokenEndpoint {
	t.Helper()
	e := &tokenEndpoint{mock: httpmock.NewMockTransport()}
	e.mock.RegisterResponder(http.MethodPost, testTokenURL, func(r *http.Request) (*http.Response, error) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			form = nil
		}
		seen := seenRequest{
			method: r.Method, url: r.URL.String(), header: r.Header.Clone(),
			authorization: r.Header.Get("Authorization"), body: string(body), form: form,
		}
		e.mu.Lock()
		e.seen = append(e.seen, seen)
		n := len(e.seen)
		e.mu.Unlock()
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || form == nil {
			return httpmock.NewStringResponse(http.StatusMethodNotAllowed, "not a form"), nil
		}
		resp := respond(seen, n)
		resp.Request = r
		return resp, nil
	})
	var strays atomic.Int64
	e.mock.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
		strays.Add(1)
		return nil, fmt.Errorf("test token endpoint: no route for %s %s", r.Method, r.URL)
	})
	t.Cleanup(func() {
		if n := strays.Load(); n != 0 {
			t.Errorf("requests to something other than POST %s: got %d; want 0", testTokenURL, n)
		}
	})
	return e
}

func (e *tokenEndpoint) requests() []seenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

// client returns an http.Client that sends to the canned endpoint.
func (e *tokenEndpoint) client() *http.Client { return &http.Client{Transport: e.mock} }

// newTestOAuth2 returns an OAuth2 for e with testClientID and testSecret.
func newTestOAuth2(t *testing.T, e *tokenEndpoint, style credential.AuthStyle, params url.Values) *credential.OAuth2 {
	t.Helper()
	o, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:       testClientID,
		ClientSecret:   testSecret,
		TokenURL:       testTokenURL,
		AuthStyle:      style,
		EndpointParams: params,
		HTTPClient:     e.client(),
	})
	if err != nil {
		t.Fatalf("NewOAuth2: got error %v; want none", err)
	}
	return o
}

// socketEndpoint is a token endpoint on a loopback socket, for the tests
// where a real connection is the point: a server that stalls until the
// client's context ends, or one that drops the connection. It counts the
// requests it gets.
type socketEndpoint struct {
	*httptest.Server
	requests atomic.Int64
}

// newSocketEndpoint starts a server whose handler is handle. release is
// closed when the test ends, before the server is closed (which waits for
// handlers), so that a handler that holds a request open can wait on it.
func newSocketEndpoint(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) *socketEndpoint {
	t.Helper()
	e := &socketEndpoint{}
	release := make(chan struct{})
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.requests.Add(1)
		handle(w, r, release)
	}))
	t.Cleanup(func() {
		close(release)
		e.Close()
	})
	return e
}

// newSocketOAuth2 returns an OAuth2 for e with testClientID and testSecret.
func newSocketOAuth2(t *testing.T, e *socketEndpoint, style credential.AuthStyle) *credential.OAuth2 {
	t.Helper()
	o, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     testClientID,
		ClientSecret: testSecret,
		TokenURL:     e.URL + "/oauth2/token",
		AuthStyle:    style,
		HTTPClient:   e.Client(),
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

// response returns an answer with the given status, headers and body.
func response(status int, header map[string]string, body string) *http.Response {
	resp := httpmock.NewStringResponse(status, body)
	for k, v := range header {
		resp.Header.Set(k, v)
	}
	return resp
}

// answer answers every request the same.
func answer(status int, header map[string]string, body string) func(seenRequest, int) *http.Response {
	return func(seenRequest, int) *http.Response { return response(status, header, body) }
}

// jsonResponse returns a JSON answer.
func jsonResponse(status int, body string) *http.Response {
	return response(status, map[string]string{"Content-Type": jsonType}, body)
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
		handle func(seenRequest, int) *http.Response
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
			want: want{oe: &credential.OAuth2Error{StatusCode: 429, Description: "Too Many Requests", RetryAfter: 30 * time.Second},
				msg: []string{"429 Too Many Requests, not an OAuth2 error answer", "Retry-After: 30s"}},
		},
		{
			name: "503 with a Retry-After date and a JSON error",
			// The date counts from the answer's Date header.
			handle: answer(503, map[string]string{"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT", "Date": "Wed, 21 Oct 2037 07:26:30 GMT", "Content-Type": jsonType}, `{"error":"temporarily_unavailable"}`),
			want: want{oe: &credential.OAuth2Error{StatusCode: 503, Code: "temporarily_unavailable", RetryAfter: 90 * time.Second},
				msg: []string{"503 Service Unavailable: temporarily_unavailable", "Retry-After: 90s"}},
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
			handle: func(r seenRequest, _ int) *http.Response {
				body, _ := json.Marshal(map[string]string{
					"error":             "invalid_client",
					"error_description": "secret " + testSecret + " and header " + r.authorization + " are wrong",
					"error_uri":         "https://idp.example/e?secret=" + url.QueryEscape(testSecret),
				})
				return jsonResponse(401, string(body))
			},
			want: want{oe: &credential.OAuth2Error{StatusCode: 401, Code: "invalid_client",
				Description: "secret REDACTED and header Basic REDACTED are wrong", URI: "https://idp.example/e?secret=REDACTED"},
				bodyLen: len(`{"error":"invalid_client","error_description":"secret REDACTED and header Basic REDACTED are wrong","error_uri":"https://idp.example/e?secret=REDACTED"}`)},
		},
		{
			name: "form echoed in an HTML page",
			handle: func(r seenRequest, _ int) *http.Response {
				return response(502, map[string]string{"Content-Type": "text/html"}, "<p>bad request: "+r.form.Encode()+"</p>")
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
			if !strings.HasPrefix(msg, `credential: OAuth2 token request to `+testDisplayURL+` for client_id "app 123": `) {
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
			if oe.StatusCode != w.oe.StatusCode || oe.Code != w.oe.Code || oe.Description != w.oe.Description || oe.URI != w.oe.URI || oe.RetryAfter != w.oe.RetryAfter {
				t.Errorf("OAuth2Error: got {%d %q %q %q %v}; want {%d %q %q %q %v}",
					oe.StatusCode, oe.Code, oe.Description, oe.URI, oe.RetryAfter, w.oe.StatusCode, w.oe.Code, w.oe.Description, w.oe.URI, w.oe.RetryAfter)
			}
			// The token cache learns the delay through the interface,
			// from the error as GetToken returns it.
			var ra credential.RetryAfterError
			if !errors.As(err, &ra) || ra.RetryAfterDelay() != w.oe.RetryAfter {
				t.Errorf("errors.As(RetryAfterError): got %v; want one with RetryAfterDelay %v", ra, w.oe.RetryAfter)
			}
			if w.bodyLen != 0 && len(oe.Body) != w.bodyLen {
				t.Errorf("len(Body): got %d; want %d", len(oe.Body), w.bodyLen)
			}
		})
	}
}

// getTokenResult is what a GetToken call run in the background returned.
type getTokenResult struct {
	tok credential.AccessToken
	err error
}

// getTokenAsync runs GetToken in a goroutine, so that the test can wait for
// it with a bound (testutil.Recv) instead of hanging if it never returns.
func getTokenAsync(ctx context.Context, o *credential.OAuth2, scope string) <-chan getTokenResult {
	done := make(chan getTokenResult, 1)
	go func() {
		tok, err := o.GetToken(ctx, scope)
		done <- getTokenResult{tok, err}
	}()
	return done
}

// stallUntilDone signals arrived (without blocking) and then answers
// nothing until the client gives up or the test ends.
func stallUntilDone(arrived chan<- struct{}) func(http.ResponseWriter, *http.Request, <-chan struct{}) {
	return func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

// A real socket is the point here: the client must abandon a request that
// a server holds open when the context's deadline passes.
func TestOAuth2ContextDeadline(t *testing.T) {
	t.Parallel()
	e := newSocketEndpoint(t, stallUntilDone(make(chan struct{}, 1)))
	o := newSocketOAuth2(t, e, credential.AuthStyleAuto)
	// The server never answers, so only the deadline can end the call;
	// how soon it passes does not matter.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := testutil.Recv(t, getTokenAsync(ctx, o, ""), "GetToken to return after its context's deadline passed")
	if !errors.Is(res.err, context.DeadlineExceeded) {
		t.Fatalf("GetToken: got error %v; want context.DeadlineExceeded", res.err)
	}
	checkNoLeak(t, res.err)
	// Under load the deadline may pass before the request is sent.
	if got := e.requests.Load(); got > 1 {
		t.Errorf("token requests: got %d; want at most 1 (Auto does not retry after a network error)", got)
	}
}

// A real socket is the point here: canceling the context must end a
// request that is in flight on a connection.
func TestOAuth2ContextCanceled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	e := newSocketEndpoint(t, stallUntilDone(arrived))
	o := newSocketOAuth2(t, e, credential.AuthStyleAuto)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := getTokenAsync(ctx, o, "")
	testutil.Recv(t, arrived, "the token request to reach the server")
	cancel()
	res := testutil.Recv(t, done, "GetToken to return after its context was canceled")
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("GetToken: got error %v; want context.Canceled", res.err)
	}
	checkNoLeak(t, res.err)
	if got := e.requests.Load(); got != 1 {
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
			r := reqs[0]
			if r.method != http.MethodPost || r.url != testTokenURL {
				t.Errorf("request: got %s %s; want POST %s (the query kept)", r.method, r.url, testTokenURL)
			}
			if got, want := r.header.Get("Content-Type"), "application/x-www-form-urlencoded"; got != want {
				t.Errorf("Content-Type: got %q; want %q", got, want)
			}
			if got, want := r.header.Get("Accept"), "application/json"; got != want {
				t.Errorf("Accept: got %q; want %q", got, want)
			}
			if got := r.authorization; got != tt.wantAuth {
				t.Errorf("Authorization: got %q; want %q", got, tt.wantAuth)
			}
			if got := r.form; !equalValues(got, tt.wantForm) {
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
		// basic answers a request with Basic, form one with form fields.
		basic, form func(seenRequest, int) *http.Response
		calls       int
		wantStyles  []string // "basic" or "form", per request
		wantCode    string   // of the last call's error; "" for success
	}{
		{
			name:       "Basic refused, form works and is remembered",
			basic:      jsonAnswer(401, `{"error":"invalid_client"}`),
			form:       jsonAnswer(200, okBody),
			calls:      2,
			wantStyles: []string{"basic", "form", "form"},
		},
		{
			name:       "Basic works and is remembered",
			basic:      jsonAnswer(200, okBody),
			form:       jsonAnswer(500, `{"error":"server_error"}`),
			calls:      2,
			wantStyles: []string{"basic", "basic"},
		},
		{
			// A learned Basic is used alone: a later refusal is the
			// server's answer (a rotated secret), not a reason to
			// probe again.
			name: "Basic learned, a later refusal is returned",
			basic: func(r seenRequest, n int) *http.Response {
				if n == 1 {
					return jsonResponse(200, okBody)
				}
				return jsonResponse(401, `{"error":"invalid_client"}`)
			},
			form:       jsonAnswer(200, okBody),
			calls:      2,
			wantStyles: []string{"basic", "basic"},
			wantCode:   "invalid_client",
		},
		{
			name:       "both fail: the second error",
			basic:      jsonAnswer(401, `{"error":"invalid_client","error_description":"basic"}`),
			form:       jsonAnswer(400, `{"error":"invalid_request","error_description":"form"}`),
			calls:      2,
			wantStyles: []string{"basic", "form", "basic", "form"},
			wantCode:   "invalid_request",
		},
		{
			name:       "503 is not a reason to try the form",
			basic:      jsonAnswer(503, `{"error":"temporarily_unavailable"}`),
			form:       jsonAnswer(200, okBody),
			calls:      1,
			wantStyles: []string{"basic"},
			wantCode:   "temporarily_unavailable",
		},
		{
			name:       "429 is not a reason to try the form",
			basic:      jsonAnswer(429, `{"error":"slow_down"}`),
			form:       jsonAnswer(200, okBody),
			calls:      1,
			wantStyles: []string{"basic"},
			wantCode:   "slow_down",
		},
		{
			name:       "200 with an error field is",
			basic:      jsonAnswer(200, `{"error":"unauthorized_client"}`),
			form:       jsonAnswer(200, okBody),
			calls:      1,
			wantStyles: []string{"basic", "form"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenEndpoint(t, func(r seenRequest, n int) *http.Response {
				if r.authorization != "" {
					return tt.basic(r, n)
				}
				return tt.form(r, n)
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

// jsonAnswer answers every request with the same JSON.
func jsonAnswer(status int, body string) func(seenRequest, int) *http.Response {
	return answer(status, map[string]string{"Content-Type": jsonType}, body)
}

// A real socket is the point here: a connection that the server drops is
// a network error, which says nothing about the auth style.
func TestOAuth2AutoNoFallbackOnNetworkError(t *testing.T) {
	t.Parallel()
	e := newSocketEndpoint(t, func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	o := newSocketOAuth2(t, e, credential.AuthStyleAuto)
	res := testutil.Recv(t, getTokenAsync(context.Background(), o, ""), "GetToken to return after the server dropped the connection")
	var oe *credential.OAuth2Error
	if res.err == nil || errors.As(res.err, &oe) {
		t.Fatalf("GetToken: got error %v; want a network error", res.err)
	}
	checkNoLeak(t, res.err)
	if got := e.requests.Load(); got != 1 {
		t.Errorf("token requests: got %d; want 1", got)
	}
}

// Callers that start before Auto has learned the style each probe with
// Basic once, and every one of them gets a token. The endpoint holds every
// Basic probe until all callers have sent theirs, so all of them really are
// in flight at once and the counts are exact.
func TestOAuth2Concurrent(t *testing.T) {
	t.Parallel()
	const callers = 50
	probes := testutil.NewBarrier(t, callers)
	e := newTokenEndpoint(t, func(r seenRequest, n int) *http.Response {
		if r.authorization != "" {
			probes.Arrive()
			return jsonResponse(401, `{"error":"invalid_client"}`)
		}
		return jsonResponse(200, fmt.Sprintf(`{"access_token":"tok-%d","expires_in":60}`, n))
	})
	o := newTestOAuth2(t, e, credential.AuthStyleAuto, nil)
	testutil.Concurrently(t, callers, "GetToken", func(int) error {
		tok, err := o.GetToken(context.Background(), "s")
		if err == nil && !strings.HasPrefix(tok.Token, "tok-") {
			err = fmt.Errorf("got token %q; want one of the endpoint's", tok.Token)
		}
		return err
	})
	probes.Check(t, "Basic probes")
	basic, form := 0, 0
	for _, r := range e.requests() {
		if r.authorization != "" {
			basic++
		} else {
			form++
		}
	}
	if basic != callers || form != callers {
		t.Errorf("requests: got %d with Basic and %d with form fields; want %d of each", basic, form, callers)
	}

	// The style is learned: the next call sends form fields at once.
	if _, err := o.GetToken(context.Background(), "s"); err != nil {
		t.Fatalf("GetToken after learning: got error %v; want none", err)
	}
	reqs := e.requests()
	if last := reqs[len(reqs)-1]; len(reqs) != 2*callers+1 || last.authorization != "" {
		t.Errorf("GetToken after learning: got %d requests, the last with Authorization %q; want %d, the last without",
			len(reqs), last.authorization, 2*callers+1)
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
		{"no ClientSecret", func(c *credential.OAuth2Config) { c.ClientSecret = "" }, "ClientSecret, PrivateKey or ClientAssertion is required: a secret, a key or an assertion"},
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

// A real socket is the point here: with a nil HTTPClient the credential
// dials with its own default client.
func TestOAuth2NilHTTPClient(t *testing.T) {
	t.Parallel()
	e := newSocketEndpoint(t, func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		w.Header().Set("Content-Type", jsonType)
		_, _ = io.WriteString(w, `{"access_token":"tok","expires_in":60}`)
	})
	o, err := credential.NewOAuth2(credential.OAuth2Config{ClientID: testClientID, ClientSecret: testSecret, TokenURL: e.URL + "/oauth2/token"})
	if err != nil {
		t.Fatalf("NewOAuth2: got error %v; want none", err)
	}
	res := testutil.Recv(t, getTokenAsync(context.Background(), o, ""), "GetToken with the default client to return")
	if res.err != nil || res.tok.Token != "tok" {
		t.Errorf("GetToken: got %v, %v; want the token, nil", res.tok, res.err)
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
