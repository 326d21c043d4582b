package tokencache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// Every refresh point moves earlier, never later, by u times a tenth of
// the lifetime: u = 0 is the rule's point, u just below 1 the earliest. An
// issuer's RefreshOn moves too, but by at most half its distance from the
// fetch. The wanted points are worked out by hand.
func TestScheduleJitter(t *testing.T) {
	f := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const ns = time.Nanosecond
	tests := []struct {
		name          string
		life          time.Duration
		refreshBefore time.Duration
		refreshOn     time.Duration // from f; zero: unset
		u             float64
		want          time.Duration // the refresh point, from f
	}{
		// A 6 s token with RefreshBefore 2 s: [3.4 s, 4.0 s].
		{"6s u=0", 6 * time.Second, 2 * time.Second, 0, 0, 4 * time.Second},
		{"6s u=0.5", 6 * time.Second, 2 * time.Second, 0, 0.5, 3700 * time.Millisecond},
		// u below 1 moves by less than the whole tenth: u*600 ms rounds to
		// a nanosecond short of it.
		{"6s u<1", 6 * time.Second, 2 * time.Second, 0, belowOne, 3400*time.Millisecond + ns},
		// A 1 h token with the defaults: [e-11 min, e-5 min].
		{"1h u=0", time.Hour, DefaultRefreshBefore, 0, 0, 55 * time.Minute},
		{"1h u=0.5", time.Hour, DefaultRefreshBefore, 0, 0.5, 52 * time.Minute},
		{"1h u<1", time.Hour, DefaultRefreshBefore, 0, belowOne, 49*time.Minute + ns},
		// The half-life rule first, then the jitter.
		{"10s half-life u=0", 10 * time.Second, DefaultRefreshBefore, 0, 0, 5 * time.Second},
		{"10s half-life u=0.5", 10 * time.Second, DefaultRefreshBefore, 0, 0.5, 4500 * time.Millisecond},
		// A RefreshBefore shorter than the margin would put the point after
		// usable-until (e-30 s): it is usable-until, then jittered.
		{"1h RefreshBefore 10s u=0", time.Hour, 10 * time.Second, 0, 0, time.Hour - 30*time.Second},
		{"1h RefreshBefore 10s u=0.5", time.Hour, 10 * time.Second, 0, 0.5, time.Hour - 3*time.Minute - 30*time.Second},
		// RefreshOn far from the fetch moves by the whole jitter.
		{"1h RefreshOn 30min u=0", time.Hour, DefaultRefreshBefore, 30 * time.Minute, 0, 30 * time.Minute},
		{"1h RefreshOn 30min u=0.5", time.Hour, DefaultRefreshBefore, 30 * time.Minute, 0.5, 27 * time.Minute},
		{"1h RefreshOn 30min u<1", time.Hour, DefaultRefreshBefore, 30 * time.Minute, belowOne, 24*time.Minute + ns},
		// RefreshOn close to the fetch: at most half the distance.
		{"1h RefreshOn 1s u=0", time.Hour, DefaultRefreshBefore, time.Second, 0, time.Second},
		{"1h RefreshOn 1s u=1/1024", time.Hour, DefaultRefreshBefore, time.Second, 1.0 / 1024, 648437500 * ns}, // 6 min/1024 = 351.5625 ms
		{"1h RefreshOn 1s u=0.5", time.Hour, DefaultRefreshBefore, time.Second, 0.5, 500 * time.Millisecond},
		{"1h RefreshOn 1s u<1", time.Hour, DefaultRefreshBefore, time.Second, belowOne, 500 * time.Millisecond},
		{"1h RefreshOn 1ns u<1", time.Hour, DefaultRefreshBefore, ns, belowOne, ns},
		{"1h RefreshOn 3ns u<1", time.Hour, DefaultRefreshBefore, 3 * ns, belowOne, 2 * ns},
		// A source that strays from [0, 1) moves by nothing, or by the
		// whole tenth at most.
		{"6s u=-1", 6 * time.Second, 2 * time.Second, 0, -1, 4 * time.Second},
		{"6s u=NaN", 6 * time.Second, 2 * time.Second, 0, math.NaN(), 4 * time.Second},
		{"6s u=1", 6 * time.Second, 2 * time.Second, 0, 1, 3400 * time.Millisecond},
		{"6s u=7", 6 * time.Second, 2 * time.Second, 0, 7, 3400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refreshOn time.Time
			if tt.refreshOn != 0 {
				refreshOn = f.Add(tt.refreshOn)
			}
			got, _ := Schedule(f, f.Add(tt.life), refreshOn, tt.refreshBefore, tt.u)
			if want := f.Add(tt.want); !got.Equal(want) {
				t.Errorf("refresh point = f+%v; want f+%v", got.Sub(f), tt.want)
			}
		})
	}
}

// FuzzScheduleBounds checks the bounds of a jittered refresh point against
// the same token's point without jitter: never later, at most a tenth of
// the lifetime earlier, after the fetch and not after usable-until.
func FuzzScheduleBounds(f *testing.F) {
	f.Add(int64(time.Hour), int64(0), int64(DefaultRefreshBefore), 0.5)
	f.Add(int64(6*time.Second), int64(0), int64(2*time.Second), 0.999)
	f.Add(int64(time.Hour), int64(time.Second), int64(DefaultRefreshBefore), 0.9)
	f.Add(int64(time.Hour), int64(-time.Minute), int64(time.Second), 0.1)
	f.Add(int64(3), int64(1), int64(1), 0.99)
	fetched := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, life, refreshOn, refreshBefore int64, u float64) {
		// Lifetimes from 1 ns to 100 years; RefreshBefore positive, as
		// the cache makes it; u in [0, 1) as the source gives it.
		life = 1 + abs(life)%int64(100*365*24*time.Hour)
		refreshBefore = 1 + abs(refreshBefore)%int64(100*365*24*time.Hour)
		u = math.Abs(math.Mod(u, 1))
		if math.IsNaN(u) {
			u = 0
		}
		exp := fetched.Add(time.Duration(life))
		var on time.Time
		if refreshOn != 0 {
			on = fetched.Add(time.Duration(refreshOn % life))
		}
		rule, usable := Schedule(fetched, exp, on, time.Duration(refreshBefore), 0)
		got, usable2 := Schedule(fetched, exp, on, time.Duration(refreshBefore), u)
		tenth := time.Duration(life) / 10
		switch {
		case !usable2.Equal(usable):
			t.Fatalf("usable-until %v with jitter, %v without", usable2, usable)
		case got.After(rule):
			t.Fatalf("u=%v: refresh point f+%v after the rule's f+%v", u, got.Sub(fetched), rule.Sub(fetched))
		case got.Before(rule.Add(-tenth)):
			t.Fatalf("u=%v: refresh point f+%v more than a tenth of %v before the rule's f+%v", u, got.Sub(fetched), time.Duration(life), rule.Sub(fetched))
		case !got.After(fetched) && life > 1:
			t.Fatalf("u=%v: refresh point f+%v not after the fetch", u, got.Sub(fetched))
		case got.After(usable):
			t.Fatalf("u=%v: refresh point f+%v after usable-until f+%v", u, got.Sub(fetched), usable.Sub(fetched))
		}
	})
}

func abs(n int64) int64 {
	if n < 0 {
		return -(n + 1) // no overflow at math.MinInt64
	}
	return n
}

// The cache refreshes at the jittered point: not a nanosecond before it,
// in the background at it. The point comes from the source when the token
// is fetched.
func TestCacheRefreshesAtJitteredPoint(t *testing.T) {
	for _, u := range []float64{0, 0.25, belowOne} {
		t.Run(fmt.Sprint(u), func(t *testing.T) {
			clk := testutil.NewClock()
			f := clk.Now()
			src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
				return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(6 * time.Second)}, nil
			}}
			c := New(src.fetch, Options{Now: clk.Now, RefreshBefore: 2 * time.Second, Rand: fixed(u)})
			e := mustGet(t, c)
			// 4 s less u*600 ms, by hand.
			want := map[float64]time.Duration{0: 4 * time.Second, 0.25: 3850 * time.Millisecond, belowOne: 3400*time.Millisecond + 1}[u]
			if got := e.RefreshAt().Sub(f); got != want {
				t.Fatalf("RefreshAt = f+%v; want f+%v", got, want)
			}
			clk.Set(f.Add(want - 1))
			mustGet(t, c)
			waitIdle(t, c)
			if n := src.calls.Load(); n != 1 {
				t.Fatalf("calls a nanosecond before the refresh point = %d; want 1", n)
			}
			clk.Set(f.Add(want))
			if e := mustGet(t, c); e.Token.Token != "tok-1" {
				t.Fatalf("at the refresh point: got %s; want tok-1 at once", e.Token.Token)
			}
			waitIdle(t, c)
			if n := src.calls.Load(); n != 2 {
				t.Fatalf("calls at the refresh point = %d; want 2", n)
			}
		})
	}
}

// throttled is a failure of the token endpoint with a Retry-After, wrapped
// as credential.OAuth2.GetToken wraps it: the cache must find it in the
// chain.
func throttled(d time.Duration) error {
	return fmt.Errorf("credential: OAuth2 token request: %w", &credential.OAuth2Error{StatusCode: 429, Code: "slow_down", RetryAfter: d})
}

// A Retry-After makes the next try wait at least that long, at most 5
// minutes, and never past the moment the token in use stops being usable;
// a shorter one leaves the backoff as it is.
func TestRetryAfter(t *testing.T) {
	const life = time.Hour // refresh at 55 min, usable until 59.5 min
	tests := []struct {
		name   string
		usable bool // the failed fetch is a background refresh of a token usable for 4.5 min more
		cause  error
		want   time.Duration // from the failure to the next try
	}{
		{"no Retry-After", false, errBoom, firstBackoff},
		{"shorter than the backoff", false, throttled(50 * time.Millisecond), firstBackoff},
		{"longer than the backoff", false, throttled(20 * time.Second), 20 * time.Second},
		{"5 min", false, throttled(5 * time.Minute), 5 * time.Minute},
		{"capped at 5 min", false, throttled(time.Hour), 5 * time.Minute},
		{"negative", false, throttled(-time.Minute), firstBackoff},
		{"in a refresh window, within it", true, throttled(20 * time.Second), 20 * time.Second},
		{"in a refresh window, past usable-until", true, throttled(5 * time.Minute), 4*time.Minute + 30*time.Second},
		{"in a refresh window, capped and past usable-until", true, throttled(time.Hour), 4*time.Minute + 30*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testutil.NewClock()
			var failing atomic.Bool
			src := &source{fn: func(_ context.Context, n int64) (credential.AccessToken, error) {
				if failing.Load() {
					return credential.AccessToken{}, tt.cause
				}
				return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(life)}, nil
			}}
			logs, logger := testutil.NewLogs()
			c := New(src.fetch, Options{Now: clk.Now, Rand: fixed(0), Logger: logger})
			var old *Entry
			if tt.usable {
				old = mustGet(t, c)
				clk.Set(old.RefreshAt())
			}
			failing.Store(true)
			failedAt := clk.Now()
			calls := src.calls.Load()
			e, err := c.Get(context.Background())
			if tt.usable {
				if err != nil || e != old {
					t.Fatalf("in the refresh window: %v, %v; want the old token", e, err)
				}
				waitIdle(t, c)
			} else if !errors.Is(err, errBoom) && !errors.As(err, new(*credential.OAuth2Error)) {
				t.Fatalf("err = %v; want the cause", err)
			}
			if n := src.calls.Load(); n != calls+1 {
				t.Fatalf("calls = %d; want %d", n, calls+1)
			}
			rec := logs.Events("fetch_failed")
			if len(rec) != 1 {
				t.Fatalf("%d fetch_failed records; want 1", len(rec))
			}
			if v := rec[0].Attrs["retry_in"]; v.Kind() != slog.KindDuration || v.Duration() != tt.want {
				t.Fatalf("retry_in = %v; want %v", v, tt.want)
			}
			var ra credential.RetryAfterError
			if asked, ok := rec[0].Attrs["retry_after"]; errors.As(tt.cause, &ra) && ra.RetryAfterDelay() > 0 {
				if !ok || asked.Kind() != slog.KindDuration || asked.Duration() != ra.RetryAfterDelay() {
					t.Errorf("retry_after = %v; want %v, what the server asked", asked, ra.RetryAfterDelay())
				}
			} else if ok {
				t.Errorf("retry_after = %v; want none", asked)
			}

			// Not a nanosecond sooner: neither a waiting caller nor one
			// in the refresh window starts a fetch.
			clk.Set(failedAt.Add(tt.want - time.Nanosecond))
			if tt.usable {
				if e, err := c.Get(context.Background()); err != nil || e != old {
					t.Fatalf("within the wait: %v, %v; want the old token", e, err)
				}
				waitIdle(t, c)
			} else {
				_, err := c.Get(context.Background())
				var fe *FetchError
				if !errors.As(err, &fe) || !fe.NextTry.Equal(failedAt.Add(tt.want)) {
					t.Fatalf("within the wait: err = %v; want a FetchError with the next try at +%v", err, tt.want)
				}
			}
			if n := src.calls.Load(); n != calls+1 {
				t.Fatalf("calls within the wait = %d; want %d", n, calls+1)
			}

			// At the next try, one fetch; it succeeds.
			failing.Store(false)
			clk.Set(failedAt.Add(tt.want))
			if _, err := c.Get(context.Background()); err != nil {
				t.Fatalf("at the next try: %v", err)
			}
			waitIdle(t, c)
			if n := src.calls.Load(); n != calls+2 {
				t.Fatalf("calls at the next try = %d; want %d", n, calls+2)
			}
			if e := c.cur.Load(); e == nil || e == old {
				t.Fatalf("after the next try the cache holds %v; want a new token", e)
			}
		})
	}
}

// The guard against a wall clock that steps back allows a wait of up to
// the 5 minutes that a Retry-After can set: a small step back within such
// a wait does not end it; a next try further away than 5 minutes can only
// come from a step back, and is taken as passed.
func TestClockStepBackDuringRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name      string
		asked     time.Duration
		stepBack  time.Duration
		wantFetch bool
	}{
		{"2 min wait, 1 min step back", 2 * time.Minute, time.Minute, false},
		{"2 min wait, 3 min step back", 2 * time.Minute, 3 * time.Minute, false},
		{"2 min wait, 3 min and 1 ns step back", 2 * time.Minute, 3*time.Minute + time.Nanosecond, true},
		{"5 min wait, no step back", time.Hour, 0, false},
		{"5 min wait, 1 ns step back", time.Hour, time.Nanosecond, true},
		{"5 min wait, 1 h step back", time.Hour, time.Hour, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := testutil.NewClock()
			var failing atomic.Bool
			failing.Store(true)
			src := &source{fn: func(context.Context, int64) (credential.AccessToken, error) {
				if failing.Load() {
					return credential.AccessToken{}, throttled(tt.asked)
				}
				return credential.AccessToken{Token: "ok", ExpiresOn: clk.Now().Add(time.Hour)}, nil
			}}
			c := newCache(src.fetch, clk)
			if _, err := c.Get(context.Background()); err == nil {
				t.Fatal("first Get succeeded; want the failure")
			}
			failing.Store(false)
			clk.Advance(-tt.stepBack)
			_, err := c.Get(context.Background())
			if got := src.calls.Load() == 2; got != tt.wantFetch || (err == nil) != tt.wantFetch {
				t.Fatalf("after a step back of %v: %d calls, err %v; want a fetch: %v", tt.stepBack, src.calls.Load(), err, tt.wantFetch)
			}
		})
	}
}
