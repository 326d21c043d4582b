package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// The fault matrix: every way a token endpoint fails, met in every state of
// the cached token, end to end (Transport, cache, credential.NewOAuth2, the
// sandbox token endpoint and an upstream that accepts only valid tokens).
// The cache runs on a fake clock, so that the refresh window, expiry and
// backoff are reached without sleeping.
//
// The slow faults (a stalled or trickling answer) last a minute. The
// token request meets one with a context whose deadline the fault's
// handler brings about once the request has reached it (stall) or once
// the answer has begun (trickle), so that the request ends as at a
// deadline, in the fault, however slow the machine. No real-time window
// decides an outcome: good token requests, before and after a fault, have
// no deadline but the cache's FetchTimeout of HangTimeout, which only a
// hang reaches. TestFetchTimeoutOption checks that FetchTimeout itself
// cuts off a credential.

// deadlineCtx is a context whose deadline passes when expire is called:
// from then on it is done and its error is context.DeadlineExceeded. It
// carries no values, so that context.Cause, which net/http reports,
// is its error too.
type deadlineCtx struct {
	done chan struct{}
	once sync.Once
}

func newDeadlineCtx() *deadlineCtx { return &deadlineCtx{done: make(chan struct{})} }

func (c *deadlineCtx) expire()                     { c.once.Do(func() { close(c.done) }) }
func (c *deadlineCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *deadlineCtx) Done() <-chan struct{}       { return c.done }
func (c *deadlineCtx) Value(any) any               { return nil }
func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// flushHook calls hook after each Flush of the answer.
type flushHook struct {
	http.ResponseWriter
	hook func()
}

func (w flushHook) Flush() {
	w.ResponseWriter.(http.Flusher).Flush()
	w.hook()
}

// matrixFault is a fault of the token endpoint and how it must surface.
type matrixFault struct {
	name    string
	handler http.Handler // nil: the connection is refused
	// check checks the error of a request that has no usable token.
	check func(t *testing.T, err error)
	// logged is part of the cause's message, which is all that a failed
	// background refresh shows (in the "error" attribute of the cache's
	// "fetch_failed" warning).
	logged string
	// expireOn is set for a slow fault, one that lasts until the token
	// request's deadline ends it: the deadline passes when the request
	// reaches the handler ("arrival") or when the handler first flushes
	// its answer ("flush").
	expireOn string
	// waits are the times from the first failure to the second token
	// request and from the second failure to the third: the backoff's
	// first steps (200 ms, 400 ms; the matrix runs without jitter), or
	// the answer's Retry-After when that is longer. Zero: the backoff's.
	waits [2]time.Duration
}

func wantOAuth2Error(status int, retryAfter time.Duration, also string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var oe *credential.OAuth2Error
		if !errors.As(err, &oe) || oe.StatusCode != status || oe.RetryAfter != retryAfter {
			t.Fatalf("err = %v; want a *credential.OAuth2Error with status %d and RetryAfter %v", err, status, retryAfter)
		}
		if !strings.Contains(err.Error(), also) {
			t.Fatalf("err = %v; want it to mention %q", err, also)
		}
	}
}

func wantDeadline(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want context.DeadlineExceeded", err)
	}
}

// wantMalformed is for a 2xx answer that holds no token: an error that is
// neither an OAuth2 error answer nor a network or context error, and that
// says what was wrong.
func wantMalformed(msg string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var oe *credential.OAuth2Error
		var ne net.Error
		if err == nil || errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v; want an error about a malformed answer", err)
		}
		if !strings.Contains(err.Error(), msg) {
			t.Fatalf("err = %v; want it to say %q", err, msg)
		}
	}
}

func matrixFaults(t *testing.T) []matrixFault {
	byName := map[string]http.Handler{}
	for _, f := range sandbox.Faults() {
		byName[f.Name] = f.Handler
	}
	faults := []matrixFault{
		{name: "connection refused", check: func(t *testing.T, err error) {
			t.Helper()
			var op *net.OpError
			if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &op) || op.Op != "dial" {
				t.Fatalf("err = %v; want a *net.OpError dial error with ECONNREFUSED", err)
			}
		}, logged: "connection refused"},
		{name: "stall", check: wantDeadline, logged: "deadline exceeded", expireOn: "arrival"},
		{name: "500", check: wantOAuth2Error(500, 0, "500 Internal Server Error"), logged: "500 Internal Server Error"},
		{name: "503 Retry-After", check: wantOAuth2Error(503, 120*time.Second, "Retry-After: 120s"), logged: "Retry-After: 120s",
			waits: [2]time.Duration{120 * time.Second, 120 * time.Second}},
		{name: "429", check: wantOAuth2Error(429, time.Second, "slow_down"), logged: "429 Too Many Requests",
			waits: [2]time.Duration{time.Second, time.Second}},
		{name: "html", check: wantMalformed("text/html"), logged: "text/html"},
		{name: "truncated JSON", check: wantMalformed("invalid JSON"), logged: "invalid JSON"},
		{name: "10 MB", check: wantMalformed("more than 1048576 bytes"), logged: "more than 1048576 bytes"},
		{name: "trickle", check: wantDeadline, logged: "deadline exceeded", expireOn: "flush"},
	}
	for i, f := range faults[1:] {
		h, ok := byName[f.name]
		if !ok {
			t.Fatalf("sandbox.Faults has no %q", f.name)
		}
		faults[i+1].handler = h
	}
	for i := range faults {
		if faults[i].waits == ([2]time.Duration{}) {
			faults[i].waits = [2]time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
		}
	}
	if len(byName) != len(faults)-1 {
		t.Fatalf("sandbox.Faults has %d faults; the matrix covers %d", len(byName), len(faults)-1)
	}
	return faults
}

// matrixEnv is one cell's world.
type matrixEnv struct {
	clk    *testutil.Clock
	idp    *sandbox.TokenServer
	proxy  *sandbox.Proxy
	tr     *Transport
	logs   *testutil.Logs
	refuse atomic.Bool // token connections go to a closed port
	// While slow, a slow fault is on, and slowReq is the context of the
	// token request in flight, which the fault's handler expires.
	slow    atomic.Bool
	slowReq atomic.Pointer[deadlineCtx]
	dials   atomic.Int64 // token connections attempted: one per token request
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	e := &matrixEnv{clk: testutil.NewClock()}
	logs, logger := testutil.NewLogs()
	e.logs = logs
	e.idp = sandbox.NewTokenServer(sandbox.TokenServerConfig{ClientSecret: "matrix-secret", Now: e.clk.Now})
	t.Cleanup(e.idp.Close)
	e.proxy = sandbox.NewProxy(e.idp, sandbox.ProxyConfig{})
	t.Cleanup(e.proxy.Close)

	closed, err := sandbox.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	tokenHTTP := &http.Transport{
		DisableKeepAlives: true, // one connection per token request
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			e.dials.Add(1)
			if e.refuse.Load() {
				addr = closed
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tokenHTTP.CloseIdleConnections)
	oauth, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     e.idp.ClientID(),
		ClientSecret: e.idp.ClientSecret(),
		TokenURL:     e.idp.URL,
		HTTPClient:   &http.Client{Transport: tokenHTTP},
	})
	if err != nil {
		t.Fatal(err)
	}
	// OAuth2 dates a token by the real clock; move its expiry onto the fake
	// clock the cache and the token server run on.
	cred := credential.Func(func(ctx context.Context, scope string) (credential.AccessToken, error) {
		if e.slow.Load() {
			// Token requests go one at a time (the cache's singleflight).
			dc := newDeadlineCtx()
			stop := context.AfterFunc(ctx, dc.expire) // the cache's own bound
			defer stop()
			e.slowReq.Store(dc)
			ctx = dc
		}
		tok, err := oauth.GetToken(ctx, scope)
		if err == nil {
			tok.ExpiresOn = tok.ExpiresOn.Add(time.Until(e.clk.Now()))
		}
		return tok, err
	})
	upstream := &http.Transport{}
	t.Cleanup(upstream.CloseIdleConnections)
	e.tr = newTransport(cred, "api://matrix/.default", &Options{
		Base:         upstream,
		FetchTimeout: testutil.HangTimeout,
		Logger:       logger,
	}, e.clk.Now, noJitter)
	return e
}

func (e *matrixEnv) setFault(f *matrixFault) {
	switch {
	case f == nil:
		e.refuse.Store(false)
		e.slow.Store(false)
		e.idp.SetFault(nil)
	case f.handler == nil:
		e.refuse.Store(true)
	case f.expireOn == "":
		e.idp.SetFault(f.handler)
	default:
		e.slow.Store(true)
		e.idp.SetFault(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			expire := func() {
				if dc := e.slowReq.Load(); dc != nil {
					dc.expire()
				}
			}
			// The form is read first: the server notices that the
			// client has gone, and ends the fault, only after that.
			_ = r.ParseForm()
			if f.expireOn == "arrival" {
				expire()
			} else {
				w = flushHook{w, expire}
			}
			f.handler.ServeHTTP(w, r)
		}))
	}
}

// refreshStarts returns how many background refreshes the cache started.
func (e *matrixEnv) refreshStarts() int { return len(e.logs.Events("refresh_started")) }

// startRefresh sends requests in the refresh window until one of them
// starts a background refresh, and checks that each carried old. A refresh
// starts on the first request after a backoff, unless the last one is
// still winding down in the cache (it marks itself done just after its
// callers have its result); the requests in between cost no token request.
func (e *matrixEnv) startRefresh(t *testing.T, old string) {
	t.Helper()
	before := e.refreshStarts()
	testutil.Eventually(t, "a request to start a background refresh", func() bool {
		if tok := e.mustDo(t); tok != old {
			t.Fatal("a request in the refresh window did not carry the old token")
		}
		return e.refreshStarts() > before
	})
}

// failedWith reports whether the cache logged a failed fetch whose error
// says cause: the only trace a failed background refresh leaves.
func (e *matrixEnv) failedWith(cause string) bool {
	for _, r := range e.logs.Events("fetch_failed") {
		if r.Level == slog.LevelWarn && strings.Contains(r.Attrs["error"].String(), cause) {
			return true
		}
	}
	return false
}

// do sends one request upstream and returns the token it carried.
func (e *matrixEnv) do(t *testing.T) (string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+"/models", nil)
	before := e.proxy.Requests()
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		if n := e.proxy.Requests(); n != before {
			t.Fatalf("a request that failed with %v reached the upstream", err)
		}
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", resp.StatusCode)
	}
	s := e.proxy.Seen()
	return strings.TrimPrefix(s[len(s)-1].Authorization, "Bearer "), nil
}

func (e *matrixEnv) mustDo(t *testing.T) string {
	t.Helper()
	tok, err := e.do(t)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// counts are what a cell measures from its start.
type counts struct{ fetches, fetchErrors, tokenRequests int64 }

func (e *matrixEnv) counts(since counts) counts {
	st := e.tr.Stats()
	return counts{st.Fetches - since.fetches, st.FetchErrors - since.fetchErrors, e.dials.Load() - since.tokenRequests}
}

// TestFaultMatrix checks each fault of the token endpoint in each state of
// the cached token. The outcomes (also in the README):
//
//   - no token yet, or the token expired: every request fails at once with
//     the cause (errors.Is/As reach it), nothing goes upstream, and any
//     number of requests within one backoff cost one token request; the
//     first request when the backoff (200 ms, then 400 ms; the answer's
//     Retry-After when longer) has passed, not a nanosecond before, costs
//     one more; when the fault ends, the first request after the backoff
//     gets a new token;
//   - in the refresh window: every request succeeds with the old token;
//     the failed background refresh is logged with its cause and costs one
//     token request per backoff period, which starts not a nanosecond
//     early; when the fault ends, the refresh after the backoff replaces
//     the token.
func TestFaultMatrix(t *testing.T) {
	const burst = 8 // requests within one backoff period
	for _, f := range matrixFaults(t) {
		for _, state := range []string{"none yet", "refresh window", "expired"} {
			t.Run(f.name+"/"+state, func(t *testing.T) {
				e := newMatrixEnv(t)
				var old string
				if state != "none yet" {
					old = e.mustDo(t)
					if state == "refresh window" {
						// The 1 h token refreshes from 55 min (the matrix
						// runs without jitter) and is usable until 59.5
						// min: room for two waits of 2 min (Retry-After)
						// and the refresh after them.
						e.clk.Advance(55 * time.Minute)
					} else {
						e.clk.Advance(2 * time.Hour)
					}
				}
				start := e.counts(counts{})
				upstreamBefore := e.proxy.Requests()
				e.setFault(&f)

				if state == "refresh window" {
					faultInRefreshWindow(t, e, &f, old, start, burst)
				} else {
					faultWithoutToken(t, e, &f, start, burst)
				}
				if f.handler != nil {
					if got, want := e.idp.Requests(), e.dials.Load(); got != want {
						t.Fatalf("token endpoint got %d requests; %d token connections were made", got, want)
					}
				} else if got := e.idp.Requests(); state == "none yet" && got != 1 || state != "none yet" && got != 2 {
					t.Fatalf("token endpoint got %d requests; want only the ones made without the fault", got)
				}
				// No request reached the upstream without a valid token.
				seen := e.proxy.Seen()
				for _, s := range seen {
					if !s.Valid || !e.idp.Known(strings.TrimPrefix(s.Authorization, "Bearer ")) {
						t.Fatalf("the upstream saw a request without a valid token: %+v", s)
					}
				}
				if state != "refresh window" && int64(len(seen)) != upstreamBefore+1 {
					t.Fatalf("upstream got %d requests; want %d (none during the fault)", len(seen), upstreamBefore+1)
				}
			})
		}
	}
}

// faultWithoutToken: no usable token while the fault lasts.
func faultWithoutToken(t *testing.T, e *matrixEnv, f *matrixFault, start counts, burst int) {
	_, errs := concurrently(t, burst, e.tr, func() *http.Request { return httpGet(e.proxy.URL + "/models") })
	for _, err := range errs {
		f.check(t, err)
	}
	if c := e.counts(start); c != (counts{1, 1, 1}) {
		t.Fatalf("%d requests within one backoff: %+v; want one fetch, failed, one token request", burst, c)
	}

	// Not a nanosecond before the wait has passed; at once after it.
	e.clk.Advance(f.waits[0] - time.Nanosecond)
	_, err := e.do(t)
	f.check(t, err)
	if c := e.counts(start); c != (counts{1, 1, 1}) {
		t.Fatalf("a nanosecond before the first wait of %v ended: %+v; want still one token request", f.waits[0], c)
	}
	e.clk.Advance(time.Nanosecond)
	_, err = e.do(t)
	f.check(t, err)
	if c := e.counts(start); c != (counts{2, 2, 2}) {
		t.Fatalf("after the first wait of %v: %+v; want 2 fetches, 2 failed, 2 token requests", f.waits[0], c)
	}

	e.setFault(nil)
	e.clk.Advance(f.waits[1] - time.Nanosecond)
	_, err = e.do(t)
	f.check(t, err) // the last failure, while its wait runs
	if c := e.counts(start); c != (counts{2, 2, 2}) {
		t.Fatalf("a nanosecond before the second wait of %v ended: %+v; want still 2 token requests", f.waits[1], c)
	}
	e.clk.Advance(time.Nanosecond)
	e.mustDo(t)
	if c := e.counts(start); c != (counts{3, 2, 3}) {
		t.Fatalf("after the fault: %+v; want 3 fetches, 2 failed, 3 token requests", c)
	}
}

// faultInRefreshWindow: the old token is still usable while the fault lasts.
func faultInRefreshWindow(t *testing.T, e *matrixEnv, f *matrixFault, old string, start counts, burst int) {
	e.startRefresh(t, old)
	for range burst {
		if tok := e.mustDo(t); tok != old {
			t.Fatal("a request in the refresh window did not carry the old token")
		}
	}
	// The warning is logged just after the failure is counted.
	testutil.Eventually(t, "the failed background refresh and its warning", func() bool {
		return e.counts(start).fetchErrors == 1 && e.failedWith(f.logged)
	})
	for range burst {
		if tok := e.mustDo(t); tok != old {
			t.Fatal("a request after the failed refresh did not carry the old token")
		}
	}
	if c := e.counts(start); c != (counts{1, 1, 1}) {
		t.Fatalf("%d requests within one backoff: %+v; want one fetch, failed, one token request", 2*burst, c)
	}

	// No refresh starts a nanosecond before the wait has passed.
	starts := e.refreshStarts()
	e.clk.Advance(f.waits[0] - time.Nanosecond)
	for range burst {
		if tok := e.mustDo(t); tok != old {
			t.Fatal("a request within the first wait did not carry the old token")
		}
	}
	if c, n := e.counts(start), e.refreshStarts(); c != (counts{1, 1, 1}) || n != starts {
		t.Fatalf("a nanosecond before the first wait of %v ended: %+v, %d refreshes started; want one token request, none started", f.waits[0], c, n-starts)
	}
	e.clk.Advance(time.Nanosecond)
	e.startRefresh(t, old)
	testutil.Eventually(t, "the second failed refresh", func() bool { return e.counts(start).fetchErrors == 2 })
	if c := e.counts(start); c != (counts{2, 2, 2}) {
		t.Fatalf("after the first wait of %v: %+v; want 2 fetches, 2 failed, 2 token requests", f.waits[0], c)
	}

	e.setFault(nil)
	starts = e.refreshStarts()
	e.clk.Advance(f.waits[1] - time.Nanosecond)
	if tok := e.mustDo(t); tok != old || e.refreshStarts() != starts {
		t.Fatalf("a nanosecond before the second wait of %v ended: a refresh started, or the old token was not sent", f.waits[1])
	}
	e.clk.Advance(time.Nanosecond)
	e.startRefresh(t, old) // the refresh that succeeds
	testutil.Eventually(t, "the new token", func() bool {
		tok, err := e.tr.Token(context.Background())
		return err == nil && tok.Token != old
	})
	if tok := e.mustDo(t); tok == old {
		t.Fatal("the old token is still sent after a successful refresh")
	}
	if c := e.counts(start); c != (counts{3, 2, 3}) {
		t.Fatalf("after the fault: %+v; want 3 fetches, 2 failed, 3 token requests", c)
	}
}
