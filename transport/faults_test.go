package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
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
// backoff are reached without sleeping; only FetchTimeout runs on real time.

// FetchTimeout of the cells whose fault lasts until it ends the fetch, and
// of the others. The short one must still let a good loopback token request
// through on a loaded machine under -race: those cells fetch good tokens
// too, before and after the fault.
const (
	matrixShortTimeout = 500 * time.Millisecond
	matrixLongTimeout  = time.Minute
)

// matrixFault is a fault of the token endpoint and how it must surface.
type matrixFault struct {
	name    string
	handler http.Handler // nil: the connection is refused
	// check checks the error of a request that has no usable token.
	check func(t *testing.T, err error)
	// logged is part of the cause's message, which is all that a failed
	// background refresh shows (in the transport's warning log).
	logged string
	// slow: the fault lasts until FetchTimeout ends the fetch. Other
	// faults answer at once, and get a FetchTimeout they never reach even
	// on a loaded machine.
	slow bool
}

func wantOAuth2Error(status int, also string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var oe *credential.OAuth2Error
		if !errors.As(err, &oe) || oe.StatusCode != status {
			t.Fatalf("err = %v; want a *credential.OAuth2Error with status %d", err, status)
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
		{name: "stall", check: wantDeadline, logged: "deadline exceeded", slow: true},
		{name: "500", check: wantOAuth2Error(500, "500 Internal Server Error"), logged: "500 Internal Server Error"},
		{name: "503 Retry-After", check: wantOAuth2Error(503, "Retry-After: 120s"), logged: "Retry-After: 120s"},
		{name: "429", check: wantOAuth2Error(429, "slow_down"), logged: "429 Too Many Requests"},
		{name: "html", check: wantMalformed("text/html"), logged: "text/html"},
		{name: "truncated JSON", check: wantMalformed("invalid JSON"), logged: "invalid JSON"},
		{name: "10 MB", check: wantMalformed("more than 1048576 bytes"), logged: "more than 1048576 bytes"},
		{name: "trickle", check: wantDeadline, logged: "deadline exceeded", slow: true},
	}
	for i, f := range faults[1:] {
		h, ok := byName[f.name]
		if !ok {
			t.Fatalf("sandbox.Faults has no %q", f.name)
		}
		faults[i+1].handler = h
	}
	if len(byName) != len(faults)-1 {
		t.Fatalf("sandbox.Faults has %d faults; the matrix covers %d", len(byName), len(faults)-1)
	}
	return faults
}

// logRecorder keeps every record a slog.Logger gets, as text.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Resolve())
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) records() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.recs...)
}

// matrixEnv is one cell's world.
type matrixEnv struct {
	clk      *testutil.Clock
	idp      *sandbox.TokenServer
	proxy    *sandbox.Proxy
	tr       *Transport
	logs     *logRecorder
	refuse   atomic.Bool  // token connections go to a closed port
	dials    atomic.Int64 // token connections attempted: one per token request
	inFlight atomic.Int64 // credential calls that have not returned
}

func newMatrixEnv(t *testing.T, fetchTimeout time.Duration) *matrixEnv {
	e := &matrixEnv{clk: testutil.NewClock(), logs: &logRecorder{}}
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
		e.inFlight.Add(1)
		defer e.inFlight.Add(-1)
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
		FetchTimeout: fetchTimeout,
		Logger:       slog.New(e.logs),
	}, e.clk.Now)
	return e
}

func (e *matrixEnv) setFault(f *matrixFault) {
	switch {
	case f == nil:
		e.refuse.Store(false)
		e.idp.SetFault(nil)
	case f.handler == nil:
		e.refuse.Store(true)
	default:
		e.idp.SetFault(f.handler)
	}
}

// advance moves the fake clock by d, once the credential call that
// FetchTimeout cut off has returned and the cache has seen it return.
//
// The cache refuses to start a call while calls it gave up on have not
// returned (ErrCredentialStuck), and that is no fault of the token
// endpoint. OAuth2 returns as soon as its context ends, and a real backoff
// lasts far longer than that; the fake clock skips the backoff in no real
// time, so the test waits for the cache's own goroutines of the fetch to
// end, which is where the cache notes the return.
func (e *matrixEnv) advance(t *testing.T, d time.Duration) {
	t.Helper()
	testutil.Eventually(t, "the credential call to return", func() bool { return e.inFlight.Load() == 0 })
	testutil.Eventually(t, "the cache's fetch goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		return !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("tokencache.(*Cache).doFetch"))
	})
	e.clk.Advance(d)
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
//     number of requests within one backoff cost one token request; one
//     backoff later the next request costs one more; when the fault ends,
//     the first request after the backoff gets a new token;
//   - in the refresh window: every request succeeds with the old token;
//     the failed background refresh is logged with its cause and costs one
//     token request per backoff period; when the fault ends, the refresh
//     after the backoff replaces the token.
func TestFaultMatrix(t *testing.T) {
	const burst = 8 // requests within one backoff period
	for _, f := range matrixFaults(t) {
		for _, state := range []string{"none yet", "refresh window", "expired"} {
			t.Run(f.name+"/"+state, func(t *testing.T) {
				timeout := matrixLongTimeout
				if f.slow {
					timeout = matrixShortTimeout
				}
				e := newMatrixEnv(t, timeout)
				var old string
				if state != "none yet" {
					old = e.mustDo(t)
					if state == "refresh window" {
						e.clk.Advance(56 * time.Minute) // the 1 h token refreshes from 55 min
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
	errs := make([]error, burst)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+"/models", nil)
			resp, err := e.tr.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		f.check(t, err)
	}
	if c := e.counts(start); c != (counts{1, 1, 1}) {
		t.Fatalf("%d requests within one backoff: %+v; want one fetch, failed, one token request", burst, c)
	}

	e.advance(t, time.Second) // the first backoff
	_, err := e.do(t)
	f.check(t, err)
	if c := e.counts(start); c != (counts{2, 2, 2}) {
		t.Fatalf("after one backoff: %+v; want 2 fetches, 2 failed, 2 token requests", c)
	}

	e.setFault(nil)
	e.advance(t, 2*time.Second) // the second backoff
	e.mustDo(t)
	if c := e.counts(start); c != (counts{3, 2, 3}) {
		t.Fatalf("after the fault: %+v; want 3 fetches, 2 failed, 3 token requests", c)
	}
}

// faultInRefreshWindow: the old token is still usable while the fault lasts.
func faultInRefreshWindow(t *testing.T, e *matrixEnv, f *matrixFault, old string, start counts, burst int) {
	for range burst {
		if tok := e.mustDo(t); tok != old {
			t.Fatal("a request in the refresh window did not carry the old token")
		}
	}
	// The warning is logged just after the failure is counted.
	warned := func() bool {
		for _, r := range e.logs.records() {
			if strings.HasPrefix(r, "WARN proxyauth: token fetch failed") && strings.Contains(r, f.logged) {
				return true
			}
		}
		return false
	}
	testutil.Eventually(t, "the failed background refresh and its warning", func() bool {
		return e.counts(start).fetchErrors == 1 && warned()
	})
	for range burst {
		if tok := e.mustDo(t); tok != old {
			t.Fatal("a request after the failed refresh did not carry the old token")
		}
	}
	if c := e.counts(start); c != (counts{1, 1, 1}) {
		t.Fatalf("%d requests within one backoff: %+v; want one fetch, failed, one token request", 2*burst, c)
	}

	e.advance(t, time.Second)
	if tok := e.mustDo(t); tok != old {
		t.Fatal("a request after one backoff did not carry the old token")
	}
	testutil.Eventually(t, "the second failed refresh", func() bool { return e.counts(start).fetchErrors == 2 })
	if c := e.counts(start); c != (counts{2, 2, 2}) {
		t.Fatalf("after one backoff: %+v; want 2 fetches, 2 failed, 2 token requests", c)
	}

	e.setFault(nil)
	e.advance(t, 2*time.Second)
	e.mustDo(t) // starts the refresh that succeeds
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
