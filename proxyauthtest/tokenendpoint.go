package proxyauthtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/redact"
)

// TokenEndpoint is a fake OAuth2 token endpoint for the client credentials
// grant (RFC 6749 section 4.4) at [TokenURL]. It accepts [ClientID] and
// [ClientSecret] as HTTP Basic (client_secret_basic, form-urlencoded or
// not) or as form fields (client_secret_post), and any scope. It issues
// random opaque tokens and remembers them, so that [Upstream] can tell a
// token it issued, unexpired and unrevoked, from any other.
//
// Every request is checked in this order: held ([TokenEndpoint.Hold]),
// delayed ([TokenEndpoint.SetDelay]), failed ([TokenEndpoint.Fail]), then
// answered. Its methods are safe for concurrent use.
type TokenEndpoint struct {
	now      func() time.Time
	requests atomic.Int64
	held     atomic.Int64

	mu       sync.Mutex
	lifetime time.Duration
	delay    time.Duration
	gate     chan struct{} // non-nil while holding; closed by Release
	changed  chan struct{} // closed, and cleared, when Held changes; made by WaitHeld
	failure  Failure       // Status 0: none
	failLeft int           // answers left to fail when failure.Count > 0
	issued   []IssuedToken
	index    map[string]int // token value -> position in issued
}

func newTokenEndpoint(now func() time.Time, lifetime time.Duration) *TokenEndpoint {
	return &TokenEndpoint{now: now, lifetime: lifetime, index: map[string]int{}}
}

// IssuedToken is a token that a [TokenEndpoint] issued, as
// [TokenEndpoint.Tokens] saw it. Value is reachable only by field access:
// every fmt verb (IssuedToken implements [fmt.Formatter]), [log/slog]
// (LogValue) and [encoding/json] (MarshalJSON) show REDACTED instead, as
// for [credential.AccessToken].
type IssuedToken struct {
	Value     string               // the access token
	Scope     string               // the scope form field; "" when absent
	AuthStyle credential.AuthStyle // how the client authenticated: AuthStyleHeader or AuthStyleParams
	IssuedAt  time.Time            // by the fake's clock
	ExpiresOn time.Time            // by the fake's clock
	Revoked   bool
}

// String describes t with its Value redacted.
func (t IssuedToken) String() string {
	return fmt.Sprintf("proxyauthtest.IssuedToken{Value:"+redact.Redacted+" Scope:%q AuthStyle:%v IssuedAt:%s ExpiresOn:%s Revoked:%v}",
		t.Scope, t.AuthStyle, t.IssuedAt.UTC().Format(time.RFC3339), t.ExpiresOn.UTC().Format(time.RFC3339), t.Revoked)
}

// Format prints String for every verb and flag (quoted for %q), so that no
// verb prints the token.
func (t IssuedToken) Format(f fmt.State, verb rune) { redact.Format(f, verb, t.String()) }

// LogValue implements [slog.LogValuer] with the Value redacted.
func (t IssuedToken) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("value", redact.Redacted),
		slog.String("scope", t.Scope),
		slog.String("auth_style", t.AuthStyle.String()),
		slog.Time("issued_at", t.IssuedAt),
		slog.Time("expires_on", t.ExpiresOn),
		slog.Bool("revoked", t.Revoked),
	)
}

// MarshalJSON implements [json.Marshaler] with the Value redacted.
func (t IssuedToken) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Value     string    `json:"value"`
		Scope     string    `json:"scope"`
		AuthStyle string    `json:"auth_style"`
		IssuedAt  time.Time `json:"issued_at"`
		ExpiresOn time.Time `json:"expires_on"`
		Revoked   bool      `json:"revoked"`
	}{redact.Redacted, t.Scope, t.AuthStyle.String(), t.IssuedAt, t.ExpiresOn, t.Revoked})
}

// Failure describes error answers of a [TokenEndpoint]; see
// [TokenEndpoint.Fail].
type Failure struct {
	// Status is the HTTP status of the answers, 400 or more: 503 or 429
	// for an overloaded endpoint, 500 for a broken one. Zero means no
	// failure.
	Status int

	// RetryAfter is sent as a Retry-After header, in whole seconds
	// rounded up. Zero sends no header.
	RetryAfter time.Duration

	// Count is how many requests fail before the endpoint answers
	// normally again. Zero means every request, until the next Fail.
	Count int
}

// Requests returns how many requests reached the endpoint: every one,
// including those that were refused, failed, or ended by their context
// while held or delayed.
func (e *TokenEndpoint) Requests() int { return int(e.requests.Load()) }

// Tokens returns every token issued so far, in order of issue.
func (e *TokenEndpoint) Tokens() []IssuedToken {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]IssuedToken(nil), e.issued...)
}

// Valid reports whether token was issued here, has not been revoked, and
// has not expired by the fake's clock.
func (e *TokenEndpoint) Valid(token string) bool {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.index[token]
	return ok && !e.issued[i].Revoked && now.Before(e.issued[i].ExpiresOn)
}

// Revoke revokes token and reports whether it was issued here. Revoking a
// token twice is harmless.
func (e *TokenEndpoint) Revoke(token string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.index[token]
	if ok {
		e.issued[i].Revoked = true
	}
	return ok
}

// RevokeAll revokes every token issued so far. Tokens issued later are
// valid.
func (e *TokenEndpoint) RevokeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.issued {
		e.issued[i].Revoked = true
	}
}

// SetLifetime sets the lifetime of the tokens issued from now on; those
// already issued keep theirs. It is cut to whole seconds, what expires_in
// can say, and is at least one second, so that the client and the fake
// agree on when a token expires (by their own clocks).
func (e *TokenEndpoint) SetLifetime(d time.Duration) {
	e.mu.Lock()
	e.lifetime = d
	e.mu.Unlock()
}

// Fail makes requests fail with f.Status and an OAuth2 error body
// (temporarily_unavailable for 429 and 503, invalid_client for 401,
// invalid_request for other 4xx, server_error otherwise): the next f.Count
// requests, or every request if f.Count is zero. It replaces an earlier
// failure; Fail(Failure{}) ends it. Fail panics unless f.Status is 0 or
// 400-599 and neither f.Count nor f.RetryAfter is negative: a test that
// asks for anything else has a bug.
func (e *TokenEndpoint) Fail(f Failure) {
	if (f.Status != 0 && f.Status < 400) || f.Status > 599 || f.Count < 0 || f.RetryAfter < 0 {
		panic(fmt.Sprintf("proxyauthtest: Fail(%+v): Status must be 0 or 400-599, Count and RetryAfter not negative", f))
	}
	e.mu.Lock()
	e.failure = f
	e.failLeft = f.Count
	e.mu.Unlock()
}

// SetDelay makes every request from now on wait d, in real time, before it
// is answered. A request whose context ends first gets its context's
// error. Zero removes the delay. To control timing exactly, use
// [TokenEndpoint.Hold].
func (e *TokenEndpoint) SetDelay(d time.Duration) {
	e.mu.Lock()
	e.delay = d
	e.mu.Unlock()
}

// Hold makes requests that arrive from now on wait until
// [TokenEndpoint.Release] is called or their context ends (they then get
// its error). [TokenEndpoint.Held] says how many are waiting, and
// [TokenEndpoint.WaitHeld] waits for them. A request
// still held when a test ends stays blocked, with its goroutine: release
// it, or end its context. Holding while already holding changes nothing.
func (e *TokenEndpoint) Hold() {
	e.mu.Lock()
	if e.gate == nil {
		e.gate = make(chan struct{})
	}
	e.mu.Unlock()
}

// Release lets every held request go on and ends the hold. It does nothing
// when not holding.
func (e *TokenEndpoint) Release() {
	e.mu.Lock()
	if e.gate != nil {
		close(e.gate)
		e.gate = nil
	}
	e.mu.Unlock()
}

// Held returns how many requests are waiting for [TokenEndpoint.Release].
func (e *TokenEndpoint) Held() int { return int(e.held.Load()) }

// WaitHeld waits until at least n requests are held, or ctx ends, and then
// returns ctx's error. It is how a test learns that the requests it started
// have reached the endpoint, without polling Held.
func (e *TokenEndpoint) WaitHeld(ctx context.Context, n int) error {
	for {
		e.mu.Lock()
		if int(e.held.Load()) >= n {
			e.mu.Unlock()
			return nil
		}
		if e.changed == nil {
			e.changed = make(chan struct{})
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// addHeld changes Held by d and wakes WaitHeld.
func (e *TokenEndpoint) addHeld(d int64) {
	e.mu.Lock()
	e.held.Add(d)
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
	e.mu.Unlock()
}

// wait holds or delays r as configured; it returns r's context error if
// that ends first.
func (e *TokenEndpoint) wait(r *http.Request) error {
	ctx := r.Context()
	e.mu.Lock()
	gate := e.gate
	e.mu.Unlock()
	if gate != nil {
		e.addHeld(1)
		select {
		case <-gate:
		case <-ctx.Done():
		}
		e.addHeld(-1)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	e.mu.Lock()
	delay := e.delay
	e.mu.Unlock()
	if delay > 0 {
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// takeFailure returns the failure that applies to the current request, if
// any, and counts it.
func (e *TokenEndpoint) takeFailure() (Failure, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.failure
	if f.Status == 0 {
		return Failure{}, false
	}
	if f.Count > 0 {
		e.failLeft--
		if e.failLeft == 0 {
			e.failure = Failure{}
		}
	}
	return f, true
}

func (e *TokenEndpoint) respond(r *http.Request) (*http.Response, error) {
	e.requests.Add(1)
	if r.Body != nil {
		defer r.Body.Close()
	}
	if err := e.wait(r); err != nil {
		return nil, err
	}
	if f, ok := e.takeFailure(); ok {
		resp := oauthError(r, f.Status, failureCode(f.Status), "failure injected by proxyauthtest")
		if f.RetryAfter > 0 {
			secs := (f.RetryAfter + time.Second - 1) / time.Second
			resp.Header.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
		}
		return resp, nil
	}
	if r.Method != http.MethodPost {
		resp := oauthError(r, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint takes POST")
		resp.Header.Set("Allow", http.MethodPost)
		return resp, nil
	}
	if r.URL.Path != "/oauth2/token" {
		return oauthError(r, http.StatusNotFound, "invalid_request", "no such endpoint"), nil
	}
	var body []byte
	if r.Body != nil {
		// httpmock hands a request made with a nil body through as it is.
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20)); err != nil {
			return nil, err
		}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return oauthError(r, http.StatusBadRequest, "invalid_request", "the body is not a form"), nil
	}
	style, ok := clientAuth(r, form)
	if !ok {
		resp := oauthError(r, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		resp.Header.Set("WWW-Authenticate", `Basic realm="proxyauthtest"`)
		return resp, nil
	}
	if form.Get("grant_type") != "client_credentials" {
		return oauthError(r, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported"), nil
	}
	tok := e.issue(form.Get("scope"), style)
	return jsonResponse(r, http.StatusOK, map[string]any{
		"access_token": tok.Value,
		"token_type":   "Bearer",
		"expires_in":   int64(tok.ExpiresOn.Sub(tok.IssuedAt) / time.Second),
	}), nil
}

// clientAuth checks the client's credentials: HTTP Basic if the request has
// it (RFC 6749 section 2.3.1 form-encodes both parts first; many clients do
// not, and both are accepted), else form fields. Sending both is refused,
// as the RFC asks.
func clientAuth(r *http.Request, form url.Values) (credential.AuthStyle, bool) {
	if id, secret, ok := r.BasicAuth(); ok {
		if form.Has("client_secret") {
			return 0, false
		}
		return credential.AuthStyleHeader, basicMatch(id, ClientID) && basicMatch(secret, ClientSecret)
	}
	return credential.AuthStyleParams, form.Get("client_id") == ClientID && form.Get("client_secret") == ClientSecret
}

func basicMatch(got, want string) bool {
	if got == want {
		return true
	}
	u, err := url.QueryUnescape(got)
	return err == nil && u == want
}

// issue makes a new token, valid from the fake's now for its lifetime.
func (e *TokenEndpoint) issue(scope string, style credential.AuthStyle) IssuedToken {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	life := max(e.lifetime, time.Second).Truncate(time.Second)
	t := IssuedToken{
		Value:     newToken(),
		Scope:     scope,
		AuthStyle: style,
		IssuedAt:  now,
		ExpiresOn: now.Add(life),
	}
	e.index[t.Value] = len(e.issued)
	e.issued = append(e.issued, t)
	return t
}

// newToken returns 24 random bytes, base64url-encoded after a prefix that
// makes a leaked token easy to search for.
func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "at_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func failureCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	case status == http.StatusUnauthorized:
		return "invalid_client"
	case status < 500:
		return "invalid_request"
	}
	return "server_error"
}

func oauthError(r *http.Request, status int, code, desc string) *http.Response {
	return jsonResponse(r, status, map[string]string{"error": code, "error_description": desc})
}

// jsonResponse answers r with v as JSON.
func jsonResponse(r *http.Request, status int, v any) *http.Response {
	b, err := json.Marshal(v)
	if err != nil {
		panic("proxyauthtest: " + err.Error()) // only the package's own values are encoded
	}
	resp := httpmock.NewBytesResponse(status, b)
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Cache-Control", "no-store")
	resp.ContentLength = int64(len(b))
	resp.Request = r
	return resp
}
