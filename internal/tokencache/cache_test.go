package tokencache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/testcred"
)

var errBoom = errors.New("identity provider says no")

// source is a credential under the test's control: each call gets its
// number (from 1) and returns what fn returns for it.
type source struct {
	calls atomic.Int64
	fn    func(ctx context.Context, n int64) (credential.AccessToken, error)
}

func (s *source) fetch(ctx context.Context) (credential.AccessToken, error) {
	return s.fn(ctx, s.calls.Add(1))
}

// newCache returns a cache on clk without jitter: its random source
// always gives 0, so that refresh points and backoff steps are the rules'
// own. The tests of the jitter inject sources of their own.
func newCache(fetch Fetcher, clk *testutil.Clock) *Cache {
	return New(fetch, Options{Now: clk.Now, Rand: fixed(0)})
}

// fixed returns a random source that always gives u.
func fixed(u float64) func() float64 { return func() float64 { return u } }

// randSeq is a random source that gives its values in turn, then the last
// one again and again. It is safe for concurrent use.
type randSeq struct {
	mu    sync.Mutex
	us    []float64
	calls int
}

func (r *randSeq) next() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.us[min(r.calls, len(r.us)-1)]
	r.calls++
	return u
}

// belowOne is the largest float64 below 1, the largest value
// math/rand/v2's Float64 returns.
var belowOne = math.Nextafter(1, 0)

func mustGet(t *testing.T, c *Cache) *Entry {
	t.Helper()
	e, err := c.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return e
}

func waitIdle(t *testing.T, c *Cache) {
	t.Helper()
	testutil.Eventually(t, "background refresh to end", func() bool { return !c.bgRunning.Load() })
}

// gate holds credential calls until it is opened. It is opened at the end
// of the test at the latest, so that a test that fails early leaves no
// call blocked.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }
func (g *gate) wait() { <-g.ch }

func TestSchedule(t *testing.T) {
	f := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name          string
		life          time.Duration
		refreshOn     time.Duration // from f; zero: unset
		wantRefresh   time.Duration // from f
		wantUsableFor time.Duration // from f
	}{
		{"1s", time.Second, 0, 500 * time.Millisecond, 900 * time.Millisecond},
		{"1s RefreshOn", time.Second, 300 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond},
		{"10s", 10 * time.Second, 0, 5 * time.Second, 9 * time.Second},
		{"10s RefreshOn", 10 * time.Second, 8 * time.Second, 8 * time.Second, 9 * time.Second},
		{"60s", time.Minute, 0, 30 * time.Second, 54 * time.Second},
		{"60s RefreshOn", time.Minute, 45 * time.Second, 45 * time.Second, 54 * time.Second},
		{"1h", time.Hour, 0, 55 * time.Minute, time.Hour - 30*time.Second},
		{"1h RefreshOn", time.Hour, 30 * time.Minute, 30 * time.Minute, time.Hour - 30*time.Second},
		{"24h", 24 * time.Hour, 0, 24*time.Hour - 5*time.Minute, 24*time.Hour - 30*time.Second},
		{"24h RefreshOn", 24 * time.Hour, 12 * time.Hour, 12 * time.Hour, 24*time.Hour - 30*time.Second},
		// A RefreshOn that would refresh at once, or only after the token
		// became unusable, falls back to the default rule.
		{"1h RefreshOn in the past", time.Hour, -time.Minute, 55 * time.Minute, time.Hour - 30*time.Second},
		{"1h RefreshOn after usable", time.Hour, time.Hour - 10*time.Second, 55 * time.Minute, time.Hour - 30*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refreshOn time.Time
			if tt.refreshOn != 0 {
				refreshOn = f.Add(tt.refreshOn)
			}
			gotRefresh, gotUsable := Schedule(f, f.Add(tt.life), refreshOn, DefaultRefreshBefore, 0)
			if want := f.Add(tt.wantRefresh); !gotRefresh.Equal(want) {
				t.Errorf("refresh point = f+%v; want f+%v", gotRefresh.Sub(f), tt.wantRefresh)
			}
			if want := f.Add(tt.wantUsableFor); !gotUsable.Equal(want) {
				t.Errorf("usable until = f+%v; want f+%v", gotUsable.Sub(f), tt.wantUsableFor)
			}

			// The cache follows the schedule: no fetch before the refresh
			// point, a background one at it, and a waited-for one once the
			// token is no longer usable.
			clk := testutil.NewClock()
			clk.Set(f)
			src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
				tok := credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: f.Add(tt.life)}
				if n == 1 && !refreshOn.IsZero() {
					tok.RefreshOn = refreshOn
				}
				if n > 1 {
					tok.ExpiresOn = clk.Now().Add(tt.life)
				}
				return tok, nil
			}}
			c := newCache(src.fetch, clk)
			mustGet(t, c)
			clk.Set(gotRefresh.Add(-time.Nanosecond))
			if e := mustGet(t, c); e.Token.Token != "tok-1" || src.calls.Load() != 1 {
				t.Fatalf("just before the refresh point: got %s after %d calls; want tok-1 after 1", e.Token.Token, src.calls.Load())
			}
			clk.Set(gotRefresh)
			if e := mustGet(t, c); e.Token.Token != "tok-1" {
				t.Fatalf("at the refresh point: got %s; want tok-1 at once", e.Token.Token)
			}
			waitIdle(t, c)
			if got := src.calls.Load(); got != 2 {
				t.Fatalf("calls after the refresh point = %d; want 2", got)
			}

			// A fresh cache jumping straight past usable-until must wait.
			c2 := newCache((&testcred.Source{Now: clk.Now, Life: tt.life}).Fetch, clk)
			clk.Set(f)
			first := mustGet(t, c2)
			clk.Set(first.UsableUntil())
			if e := mustGet(t, c2); e.Token.Token != "tok-2" {
				t.Fatalf("at usable-until: got %s; want a newly fetched tok-2", e.Token.Token)
			}
		})
	}
}

func TestNeverExpires(t *testing.T) {
	clk := testutil.NewClock()
	src := &source{fn: func(context.Context, int64) (credential.AccessToken, error) {
		return credential.AccessToken{Token: "forever"}, nil
	}}
	c := newCache(src.fetch, clk)
	mustGet(t, c)
	clk.Advance(100 * 365 * 24 * time.Hour)
	mustGet(t, c)
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("calls = %d; want 1", got)
	}
	c.Invalidate("forever")
	mustGet(t, c)
	if got := src.calls.Load(); got != 2 {
		t.Fatalf("calls after Invalidate = %d; want 2", got)
	}
}

func TestFreshPathDoesNotAllocate(t *testing.T) {
	clk := testutil.NewClock()
	c := newCache((&testcred.Source{Now: clk.Now}).Fetch, clk)
	mustGet(t, c)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Get(ctx) }); n != 0 {
		t.Fatalf("fresh Get allocates %v times; want 0", n)
	}
}

// A request in the refresh window gets the old token at once while the
// background refresh is blocked inside the credential.
func TestRefreshWindowDoesNotWait(t *testing.T) {
	clk := testutil.NewClock()
	entered, release := make(chan struct{}), newGate(t)
	src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
		if n == 2 {
			close(entered)
			release.wait()
		}
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	c := newCache(src.fetch, clk)
	mustGet(t, c)
	clk.Advance(56 * time.Minute) // past the refresh point at 55 min

	if e := mustGet(t, c); e.Token.Token != "tok-1" {
		t.Fatalf("got %s; want tok-1", e.Token.Token)
	}
	testutil.Recv(t, entered, "the background refresh to call the credential")
	for range 100 {
		if e := mustGet(t, c); e.Token.Token != "tok-1" {
			t.Fatalf("during the refresh: got %s; want tok-1", e.Token.Token)
		}
	}
	release.open()
	waitIdle(t, c)
	if e := mustGet(t, c); e.Token.Token != "tok-2" {
		t.Fatalf("after the refresh: got %s; want tok-2", e.Token.Token)
	}
	if got := src.calls.Load(); got != 2 {
		t.Fatalf("calls = %d; want 2", got)
	}
}

// A failed background refresh keeps the old token, and the next attempt
// waits for the backoff.
func TestFailedRefreshKeepsToken(t *testing.T) {
	clk := testutil.NewClock()
	var failing atomic.Bool
	src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
		if failing.Load() {
			return credential.AccessToken{}, errBoom
		}
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	c := newCache(src.fetch, clk)
	mustGet(t, c)
	failing.Store(true)
	clk.Advance(56 * time.Minute)

	if e := mustGet(t, c); e.Token.Token != "tok-1" {
		t.Fatalf("got %s; want tok-1", e.Token.Token)
	}
	waitIdle(t, c)
	if _, errs := c.Stats(); errs != 1 {
		t.Fatalf("fetch errors = %d; want 1", errs)
	}
	clk.Advance(firstBackoff - time.Nanosecond)
	for range 100 {
		if e := mustGet(t, c); e.Token.Token != "tok-1" {
			t.Fatalf("within the backoff: got %s; want tok-1", e.Token.Token)
		}
	}
	waitIdle(t, c)
	if got := src.calls.Load(); got != 2 {
		t.Fatalf("calls within the backoff = %d; want 2", got)
	}
	clk.Advance(time.Nanosecond)
	failing.Store(false)
	mustGet(t, c)
	waitIdle(t, c)
	if got := src.calls.Load(); got != 3 {
		t.Fatalf("calls after the backoff = %d; want 3", got)
	}
	if e := mustGet(t, c); e.Token.Token != "tok-3" {
		t.Fatalf("after a successful refresh: got %s; want tok-3", e.Token.Token)
	}
}

// With no usable token and a failing credential, callers inside one backoff
// period share one call. The steps are 200 ms doubling to 30 s, each
// shortened by the random source's u times half the step, and a success
// starts them again.
func TestBackoff(t *testing.T) {
	clk := testutil.NewClock()
	var failing atomic.Bool
	failing.Store(true)
	src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
		if failing.Load() {
			return credential.AccessToken{}, fmt.Errorf("attempt %d: %w", n, errBoom)
		}
		return credential.AccessToken{Token: "ok", ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	ms := time.Millisecond
	steps := []struct {
		step time.Duration
		u    float64
		want time.Duration // the wait: step - u*step/2, worked out by hand
	}{
		{200 * ms, 0, 200 * ms}, // the step itself
		{400 * ms, 0.5, 300 * ms},
		{800 * ms, 0.25, 700 * ms},
		{1600 * ms, 0.75, 1000 * ms},
		// u below 1 takes less than the whole half: u*1.6 s rounds to
		// a nanosecond short of it.
		{3200 * ms, belowOne, 1600*ms + time.Nanosecond},
		{6400 * ms, 0.5, 4800 * ms},
		{12800 * ms, 0.5, 9600 * ms},
		{25600 * ms, 0.5, 19200 * ms},
		{30 * time.Second, 0.5, 22500 * ms}, // 51.2 s, capped
		{30 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, 0.125, 28125 * ms},
	}
	rs := &randSeq{}
	for _, s := range steps {
		rs.us = append(rs.us, s.u)
	}
	// The token after the recovery and the failure after it draw 0.25.
	rs.us = append(rs.us, 0.25)
	c := New(src.fetch, Options{Now: clk.Now, Rand: rs.next})

	var wg sync.WaitGroup
	errs := make([]error, 1000)
	for i := range errs {
		wg.Go(func() { _, errs[i] = c.Get(context.Background()) })
	}
	testutil.Wait(t, &wg, "1000 callers to get the failure")
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("calls from 1000 callers = %d; want 1", got)
	}
	for _, err := range errs {
		var fe *FetchError
		if !errors.Is(err, errBoom) || !errors.As(err, &fe) {
			t.Fatalf("err = %v; want a *FetchError wrapping the cause", err)
		}
		if !strings.Contains(err.Error(), "next try in 200ms") || !strings.Contains(err.Error(), errBoom.Error()) {
			t.Fatalf("err = %q; want the cause and when the next try is", err)
		}
	}

	for i, s := range steps {
		// The first Get is the 1000 callers' failure; each later one makes
		// the next attempt, at the end of the wait before it.
		_, err := c.Get(context.Background())
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Failures != i+1 {
			t.Fatalf("step %d: err = %v; want a *FetchError after %d failures", i+1, err, i+1)
		}
		got := fe.NextTry.Sub(clk.Now())
		if got != s.want {
			t.Fatalf("step %d (%v, u=%v): next try in %v; want %v", i+1, s.step, s.u, got, s.want)
		}
		if got < s.step/2 || got > s.step {
			t.Fatalf("step %d: next try in %v; want within [%v, %v]", i+1, got, s.step/2, s.step)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("next try in %v", s.want.Round(time.Millisecond))) {
			t.Fatalf("step %d: err = %q; want it to say next try in %v", i+1, err, s.want)
		}
		calls := src.calls.Load()
		clk.Advance(s.want - time.Nanosecond)
		if _, err := c.Get(context.Background()); !errors.Is(err, errBoom) {
			t.Fatalf("step %d: within the backoff err = %v; want the last error", i+1, err)
		}
		if got := src.calls.Load(); got != calls {
			t.Fatalf("step %d: calls within the backoff = %d; want %d", i+1, got, calls)
		}
		clk.Advance(time.Nanosecond) // the next step's Get makes the next attempt
	}

	failing.Store(false)
	if _, err := c.Get(context.Background()); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	failing.Store(true)
	clk.Advance(time.Hour) // the token is now unusable
	_, err := c.Get(context.Background())
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Failures != 1 {
		t.Fatalf("after a success: err = %v; want a first failure", err)
	}
	if got, want := fe.NextTry.Sub(clk.Now()), 175*ms; got != want {
		t.Fatalf("after a success the backoff must restart at 200 ms: next try in %v (u=0.25); want %v", got, want)
	}
	if got, want := src.calls.Load(), int64(len(steps)+2); got != want {
		t.Fatalf("calls = %d; want %d: one per step, the recovery, the failure after it", got, want)
	}
}

// One caller's cancelled ctx ends only its own wait; the others, all inside
// Get while the one credential call is blocked, get its token.
func TestCallerCancelEndsOnlyItsWait(t *testing.T) {
	clk := testutil.NewClock()
	entered, release := make(chan struct{}), newGate(t)
	src := &source{fn: func(context.Context, int64) (credential.AccessToken, error) {
		close(entered)
		release.wait()
		return credential.AccessToken{Token: "shared", ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	// Each caller passes the hook's "joined" once it shares the fetch,
	// so the count tells when every waiter is waiting on it.
	var joined atomic.Int64
	c := New(src.fetch, Options{Now: clk.Now, Rand: fixed(0)})
	c.hook = func(p string) {
		if p == "joined" {
			joined.Add(1)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelled := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx)
		cancelled <- err
	}()
	testutil.Recv(t, entered, "the first caller's fetch to call the credential")

	const waiters = 50
	var wg sync.WaitGroup
	got := make([]string, waiters)
	errs := make([]error, waiters)
	for i := range got {
		wg.Go(func() {
			e, err := c.Get(context.Background())
			if err != nil {
				errs[i] = err
				return
			}
			got[i] = e.Token.Token
		})
	}
	testutil.Eventually(t, "the other callers to join the fetch", func() bool { return joined.Load() >= 1+waiters })
	cancel()
	// The cancelled caller returns while the fetch is still blocked.
	if err := testutil.Recv(t, cancelled, "the cancelled caller to return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v; want context.Canceled", err)
	}
	release.open()
	testutil.Wait(t, &wg, "the other callers to get the token")
	for i, tok := range got {
		if tok != "shared" {
			t.Fatalf("caller %d got %q (err %v); want the shared token", i, tok, errs[i])
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("calls = %d; want 1", n)
	}
}

// A fetch is bounded by FetchTimeout even when the credential ignores its
// context; the token that arrives late is still cached.
func TestFetchTimeout(t *testing.T) {
	clk := testutil.NewClock()
	release := newGate(t)
	src := &source{fn: func(context.Context, int64) (credential.AccessToken, error) {
		release.wait() // ignores ctx
		return credential.AccessToken{Token: "late", ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	c := New(src.fetch, Options{Now: clk.Now, FetchTimeout: 20 * time.Millisecond, Rand: fixed(0)})

	_, err := c.Get(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "fetch timeout") {
		t.Fatalf("err = %v; want the fetch timeout", err)
	}
	release.open()
	testutil.Eventually(t, "the late token to be cached", func() bool { return c.cur.Load() != nil })
	if e := mustGet(t, c); e.Token.Token != "late" {
		t.Fatalf("got %s; want the late token", e.Token.Token)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("calls = %d; want 1", n)
	}
}

func TestBadTokens(t *testing.T) {
	clk := testutil.NewClock()
	tests := []struct {
		name string
		tok  credential.AccessToken
		want func(error) bool
	}{
		// An empty token and one that cannot go into a header both match
		// ErrInvalidToken, each with a message that says which it is.
		{"empty", credential.AccessToken{ExpiresOn: clk.Now().Add(time.Hour)}, func(err error) bool {
			return errors.Is(err, ErrEmptyToken) && errors.Is(err, ErrInvalidToken) && strings.Contains(err.Error(), "empty")
		}},
		{"header injection", credential.AccessToken{Token: "a\r\nX-Evil: 1", ExpiresOn: clk.Now().Add(time.Hour)}, func(err error) bool {
			return errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrEmptyToken) && strings.Contains(err.Error(), "characters")
		}},
		{"not ASCII", credential.AccessToken{Token: "tök", ExpiresOn: clk.Now().Add(time.Hour)}, func(err error) bool {
			return errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrEmptyToken)
		}},
		{"already expired", credential.AccessToken{Token: "old", ExpiresOn: clk.Now().Add(-time.Second)}, func(err error) bool {
			var ee *ExpiredTokenError
			return errors.As(err, &ee) && ee.ExpiresOn.Equal(clk.Now().Add(-time.Second)) && ee.Now.Equal(clk.Now()) &&
				!errors.Is(err, ErrInvalidToken) && strings.Contains(err.Error(), "expired")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &source{fn: func(context.Context, int64) (credential.AccessToken, error) { return tt.tok, nil }}
			c := newCache(src.fetch, clk)
			_, err := c.Get(context.Background())
			var fe *FetchError
			if !tt.want(err) || !errors.As(err, &fe) {
				t.Fatalf("err = %v", err)
			}
			if tt.tok.Token != "" && strings.Contains(err.Error(), tt.tok.Token) {
				t.Fatalf("err %q contains the token", err)
			}
			// The backoff applies to a bad token as to any failed fetch.
			_, _ = c.Get(context.Background())
			if n := src.calls.Load(); n != 1 {
				t.Fatalf("calls = %d; want 1", n)
			}
		})
	}
}

func TestInvalidateOnlyDropsTheGivenToken(t *testing.T) {
	clk := testutil.NewClock()
	src := &testcred.Source{Now: clk.Now}
	c := newCache(src.Fetch, clk)
	mustGet(t, c)
	c.Invalidate("tok-1")
	if e := mustGet(t, c); e.Token.Token != "tok-2" {
		t.Fatalf("got %s; want tok-2", e.Token.Token)
	}
	c.Invalidate("tok-1") // a late 401 for the old token
	if e := mustGet(t, c); e.Token.Token != "tok-2" {
		t.Fatalf("after a stale Invalidate: got %s; want tok-2", e.Token.Token)
	}
}

func TestEntryFormatHidesToken(t *testing.T) {
	clk := testutil.NewClock()
	c := newCache((&source{fn: func(context.Context, int64) (credential.AccessToken, error) {
		return credential.AccessToken{Token: "s3cr3t-token", ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}).fetch, clk)
	e := mustGet(t, c)
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{e, *e, []*Entry{e}, struct{ E Entry }{*e}} {
			if s := fmt.Sprintf(f, v); strings.Contains(s, "s3cr3t") {
				t.Errorf("%s of %T shows the token: %s", f, v, s)
			}
		}
	}
}

func TestCredentialPanicBecomesError(t *testing.T) {
	clk := testutil.NewClock()
	src := &source{fn: func(context.Context, int64) (credential.AccessToken, error) {
		panic("boom in the credential")
	}}
	c := newCache(src.fetch, clk)
	_, err := c.Get(context.Background())
	if !errors.Is(err, ErrCredentialPanic) || !strings.Contains(err.Error(), "boom in the credential") {
		t.Fatalf("err = %v; want ErrCredentialPanic with the panic value", err)
	}
}

// A wall clock that steps back during a backoff must not stop fetches for
// as long as the step.
func TestClockStepBackDuringBackoff(t *testing.T) {
	clk := testutil.NewClock()
	var failing atomic.Bool
	failing.Store(true)
	src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
		if failing.Load() {
			return credential.AccessToken{}, errBoom
		}
		return credential.AccessToken{Token: "ok", ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	c := newCache(src.fetch, clk)
	if _, err := c.Get(context.Background()); !errors.Is(err, errBoom) {
		t.Fatalf("err = %v; want errBoom", err)
	}
	failing.Store(false)
	clk.Advance(-time.Hour)
	if _, err := c.Get(context.Background()); err != nil {
		t.Fatalf("after the clock stepped back: %v; want a new fetch", err)
	}
}

// Calls that ignore their context and outlive the fetch timeout are
// bounded: a third does not start while two are stuck.
func TestStuckCredentialIsNotCalledAgain(t *testing.T) {
	clk := testutil.NewClock()
	release := newGate(t)
	src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
		if n <= maxCalls {
			release.wait() // ignores ctx
		}
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	c := New(src.fetch, Options{Now: clk.Now, FetchTimeout: 10 * time.Millisecond, Rand: fixed(0)})
	for range maxCalls {
		if _, err := c.Get(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v; want the fetch timeout", err)
		}
		clk.Advance(maxBackoff)
	}
	for range 5 {
		if _, err := c.Get(context.Background()); !errors.Is(err, ErrCredentialStuck) {
			t.Fatalf("err = %v; want ErrCredentialStuck", err)
		}
		clk.Advance(maxBackoff)
	}
	if n := src.calls.Load(); n != maxCalls {
		t.Fatalf("calls while %d are stuck = %d; want %d", maxCalls, n, maxCalls)
	}
	if f, fe := c.Stats(); f != maxCalls || fe != maxCalls {
		t.Fatalf("Stats = %d fetches, %d errors; want %d, %d", f, fe, maxCalls, maxCalls)
	}
	release.open()
	testutil.Eventually(t, "the late token", func() bool { return c.cur.Load() != nil })
	if e := mustGet(t, c); e.Token.Token != "tok-1" && e.Token.Token != "tok-2" {
		t.Fatalf("got %s; want a late token", e.Token.Token)
	}
	testutil.Eventually(t, "the stuck calls to end", func() bool { return c.calls.Load() == 0 })
}

// A failed background refresh of a short-lived token must not leave callers
// without a token for a whole backoff: the next try comes no later than the
// moment the old token stops being usable.
func TestFailedRefreshRetriesWhenTokenRunsOut(t *testing.T) {
	clk := testutil.NewClock()
	var failing atomic.Bool
	src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
		if failing.Load() {
			return credential.AccessToken{}, errBoom
		}
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(2 * time.Second)}, nil
	}}
	c := newCache(src.fetch, clk)
	first := mustGet(t, c) // refresh at 1s, usable until 1.8s
	failing.Store(true)
	// The backoff of 200 ms would end at 1.9 s, after usable-until.
	clk.Advance(1700 * time.Millisecond)
	mustGet(t, c)
	waitIdle(t, c)
	var fe *FetchError
	if !errors.As(c.backoffErr(clk.Now()), &fe) || !fe.NextTry.Equal(first.UsableUntil()) {
		t.Fatalf("after the failed refresh: %v; want a backoff until usable-until %v", fe, first.UsableUntil())
	}
	failing.Store(false)
	clk.Set(first.UsableUntil())
	if e := mustGet(t, c); e.Token.Token != "tok-3" {
		t.Fatalf("got %s; want a new token as soon as the old one ran out", e.Token.Token)
	}
}

// Every time in an entry is wall-clock only: a monotonic reading would be
// compared by the monotonic clock, which stops while a machine sleeps.
func TestEntryTimesAreWallClock(t *testing.T) {
	c := New(func(context.Context) (credential.AccessToken, error) {
		return credential.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Minute)}, nil
	}, Options{})
	e, err := c.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, tm := range map[string]time.Time{"refresh point": e.RefreshAt(), "usable until": e.UsableUntil()} {
		if strings.Contains(tm.String(), "m=") {
			t.Errorf("%s %v has a monotonic clock reading", name, tm)
		}
	}
}

// A caller whose context is already done starts no fetch.
func TestCancelledCallerStartsNoFetch(t *testing.T) {
	clk := testutil.NewClock()
	src := &testcred.Source{Now: clk.Now}
	c := newCache(src.Fetch, clk)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	if n := src.Calls(); n != 0 {
		t.Fatalf("calls = %d; want 0", n)
	}
}

// The cache's log records are told apart by their "event" attribute:
// "token_fetched" (debug) with the expiry and the refresh point,
// "refresh_started" (debug) when a background refresh begins, and
// "fetch_failed" (warn) with the count of failures in a row and the wait
// before the next try. No record holds a token.
func TestLogEvents(t *testing.T) {
	clk := testutil.NewClock()
	var failing atomic.Bool
	src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
		if failing.Load() {
			return credential.AccessToken{}, fmt.Errorf("attempt %d: %w", n, errBoom)
		}
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	}}
	logs, logger := testutil.NewLogs()
	c := New(src.fetch, Options{Now: clk.Now, Logger: logger, Rand: fixed(0)})

	first := mustGet(t, c)
	clk.Set(first.RefreshAt())
	mustGet(t, c)
	waitIdle(t, c)
	second := c.cur.Load()
	if second == first || second.Token.Token != "tok-2" {
		t.Fatalf("after the refresh the cache holds %s; want tok-2", second.Token.Token)
	}

	failing.Store(true)
	clk.Set(second.UsableUntil())
	var fes []*FetchError
	for i := range 2 {
		_, err := c.Get(context.Background())
		var fe *FetchError
		if !errors.As(err, &fe) {
			t.Fatalf("failure %d: err = %v; want a *FetchError", i+1, err)
		}
		fes = append(fes, fe)
		// Within the backoff no fetch is made, and nothing is logged.
		clk.Set(fe.NextTry.Add(-time.Nanosecond))
		if _, err := c.Get(context.Background()); !errors.Is(err, errBoom) {
			t.Fatalf("within backoff %d: err = %v; want the last failure", i+1, err)
		}
		clk.Set(fe.NextTry)
	}

	recs := logs.Records()
	type want struct {
		event string
		level slog.Level
	}
	wants := []want{
		{"token_fetched", slog.LevelDebug},
		{"refresh_started", slog.LevelDebug},
		{"token_fetched", slog.LevelDebug},
		{"fetch_failed", slog.LevelWarn},
		{"fetch_failed", slog.LevelWarn},
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Level.String()+" "+r.Event())
	}
	if len(recs) != len(wants) {
		t.Fatalf("records: %q; want %d", got, len(wants))
	}
	for i, w := range wants {
		if recs[i].Event() != w.event || recs[i].Level != w.level {
			t.Fatalf("record %d: %q; want %v %s (all: %q)", i, got[i], w.level, w.event, got)
		}
	}

	for i, e := range []*Entry{first, second} {
		r := logs.Events("token_fetched")[i]
		if v, ok := r.Attrs["expires_on"]; !ok || v.Kind() != slog.KindTime || !v.Time().Equal(e.Token.ExpiresOn) {
			t.Errorf("token_fetched %d: expires_on = %v; want %v", i+1, v, e.Token.ExpiresOn)
		}
		if v, ok := r.Attrs["refresh_at"]; !ok || v.Kind() != slog.KindTime || !v.Time().Equal(e.RefreshAt()) {
			t.Errorf("token_fetched %d: refresh_at = %v; want %v", i+1, v, e.RefreshAt())
		}
	}
	for i, r := range logs.Events("fetch_failed") {
		fe := fes[i]
		if v := r.Attrs["failures"]; v.Kind() != slog.KindInt64 || v.Int64() != int64(i+1) || fe.Failures != i+1 {
			t.Errorf("fetch_failed %d: failures = %v (error says %d); want %d", i+1, v, fe.Failures, i+1)
		}
		if v := r.Attrs["retry_in"]; v.Kind() != slog.KindDuration || v.Duration() != fe.NextTry.Sub(fe.now) || v.Duration() <= 0 {
			t.Errorf("fetch_failed %d: retry_in = %v; want %v, as the error says", i+1, v, fe.NextTry.Sub(fe.now))
		}
		if v := r.Attrs["error"]; !strings.Contains(v.String(), errBoom.Error()) || !strings.Contains(v.String(), fmt.Sprintf("attempt %d", i+3)) {
			t.Errorf("fetch_failed %d: error = %q; want the cause of attempt %d", i+1, v, i+3)
		}
	}
	if d0, d1 := logs.Events("fetch_failed")[0].Attrs["retry_in"].Duration(), logs.Events("fetch_failed")[1].Attrs["retry_in"].Duration(); d1 <= d0 {
		t.Errorf("retry_in %v after the second failure; want more than the %v after the first", d1, d0)
	}
	for _, r := range recs {
		for k, v := range r.Attrs {
			if strings.Contains(v.String(), "tok-") {
				t.Errorf("%s record: %s = %q holds a token", r.Event(), k, v)
			}
		}
	}
}

// A caller whose own context ended gets its context's error, with the
// cause it was given, and no FetchError, also while the backoff after a
// failed fetch runs: nothing failed but its wait.
func TestCallerContextErrorIsNotAFetchError(t *testing.T) {
	errMine := errors.New("the caller's own reason")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	withCause, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(errMine)
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelExpired()
	tests := []struct {
		name string
		ctx  context.Context
		want []error
	}{
		{"cancelled", cancelled, []error{context.Canceled}},
		{"cancelled with a cause", withCause, []error{context.Canceled, errMine}},
		{"deadline exceeded", expired, []error{context.DeadlineExceeded}},
	}
	for _, tt := range tests {
		for _, backoff := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s backoff=%v", tt.name, backoff), func(t *testing.T) {
				clk := testutil.NewClock()
				src := &source{fn: func(context.Context, int64) (credential.AccessToken, error) {
					return credential.AccessToken{}, errBoom
				}}
				c := newCache(src.fetch, clk)
				if backoff {
					if _, err := c.Get(context.Background()); !errors.Is(err, errBoom) {
						t.Fatalf("first Get: %v; want errBoom", err)
					}
				}
				calls := src.calls.Load()
				_, err := c.Get(tt.ctx)
				for _, want := range tt.want {
					if !errors.Is(err, want) {
						t.Errorf("err = %v; want it to match %v", err, want)
					}
				}
				var fe *FetchError
				if errors.As(err, &fe) || errors.Is(err, errBoom) {
					t.Errorf("err = %v; want the context's error, not a FetchError", err)
				}
				if n := src.calls.Load(); n != calls {
					t.Errorf("credential calls = %d; want %d (none for a caller that gave up)", n, calls)
				}
			})
		}
	}
}

// holdAt returns a hook that holds the first call at point until release
// is closed, and reports on arrived when it gets there and on joined each
// time a caller joins or starts a fetch.
func holdAt(t *testing.T, point string) (hook func(string), arrived <-chan struct{}, joined <-chan struct{}, release func()) {
	arr := make(chan struct{})
	join := make(chan struct{}, 16)
	rel := make(chan struct{})
	release = sync.OnceFunc(func() { close(rel) })
	t.Cleanup(release)
	var held atomic.Bool
	hook = func(p string) {
		switch {
		case p == point && held.CompareAndSwap(false, true):
			close(arr)
			<-rel
		case p == "joined":
			select {
			case join <- struct{}{}:
			default:
			}
		}
	}
	return hook, arr, join, release
}

// A Get right after Invalidate(tok-1) never hands out tok-1, even when it
// joins a fetch that had found tok-1 fresh and was about to share it. The
// caller that started that fetch saw no fresh token a moment before tok-1
// was stored (here the test starts the fetch itself). Before the fix, a
// transport resending after a 401 got the refused token back and returned
// the 401 without a resend.
func TestGetAfterInvalidateNeverReturnsTheInvalidatedToken(t *testing.T) {
	for _, point := range []string{
		"loaded",  // the fetch has read tok-1, not yet decided to reuse it
		"reusing", // the fetch has decided to reuse tok-1 and returns it next
	} {
		t.Run(point, func(t *testing.T) {
			clk := testutil.NewClock()
			src := &testcred.Source{Now: clk.Now}
			c := newCache(src.Fetch, clk)
			if e := mustGet(t, c); e.Token.Token != "tok-1" {
				t.Fatalf("got %s; want tok-1", e.Token.Token)
			}
			hook, arrived, joined, release := holdAt(t, point)
			c.hook = hook

			// The fetch of a caller that saw no fresh token just before
			// tok-1 was stored.
			early := c.sf.DoChan("", c.doFetch)
			testutil.Recv(t, arrived, "the fetch to find tok-1 fresh")

			c.Invalidate("tok-1") // a request got 401 with tok-1
			type result struct {
				e   *Entry
				err error
			}
			done := make(chan result, 1)
			go func() {
				e, err := c.Get(context.Background())
				done <- result{e, err}
			}()
			testutil.Recv(t, joined, "the Get after Invalidate to join the fetch")
			release()

			res := testutil.Recv(t, done, "the Get after Invalidate to return")
			if res.err != nil || res.e.Token.Token == "tok-1" {
				t.Fatalf("Get after Invalidate(tok-1): %v, %v; want a new token", res.e, res.err)
			}
			r := testutil.Recv(t, early, "the early fetch to end")
			if point == "loaded" {
				// The fetch read tok-1 before the invalidation but
				// decided after it: it does not share tok-1 either.
				if r.Err != nil || r.Val.(*Entry).Token.Token == "tok-1" {
					t.Fatalf("the fetch that decided after Invalidate shared %v, %v; want a new token", r.Val, r.Err)
				}
			}
			if n := src.Calls(); n != 2 {
				t.Fatalf("credential calls = %d; want 2: tok-1 and one new token", n)
			}
		})
	}
}
