package bench

import (
	"context"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/internal/testutil"
)

// The scenarios at a tiny size: they compile, run for every peer and give
// consistent results. No timings are asserted: the machine may be busy.

func TestRollover(t *testing.T) {
	cfg := RolloverConfig{
		Workers: 4, Lifetime: time.Second, Lifetimes: 2, Margin: 300 * time.Millisecond,
		TokenLatency: 10 * time.Millisecond, UpstreamLatency: time.Millisecond, WaitThreshold: 50 * time.Millisecond,
	}
	for _, p := range Peers() {
		t.Run(benchKey(p.Name), func(t *testing.T) {
			t.Parallel()
			r, err := Rollover(context.Background(), p, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Peer != p.Name || r.Requests == 0 || r.Failed > r.Requests || r.Waited > r.Requests {
				t.Errorf("inconsistent result %+v", r)
			}
			if !(r.P50 <= r.P99 && r.P99 <= r.Max) {
				t.Errorf("percentiles out of order: %+v", r)
			}
			// Two lifetimes: every peer needs at least one more token.
			if r.TokenRequests < 1 {
				t.Errorf("token requests = %d; want at least 1", r.TokenRequests)
			}
		})
	}
}

func TestStorm(t *testing.T) {
	cfg := StormConfig{Requests: 20, TokenLatency: 10 * time.Millisecond, Margin: 5 * time.Minute}
	for _, p := range Peers() {
		t.Run(benchKey(p.Name), func(t *testing.T) {
			t.Parallel()
			r, err := Storm(context.Background(), p, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != cfg.Requests || r.Failed > r.Requests || r.Upstream < int64(r.Requests) {
				t.Errorf("inconsistent result %+v", r)
			}
			switch p.Name {
			case ProxyAuth.Name:
				// Every request is resent once with the one new token.
				if r.Failed != 0 || r.TokenRequests != 1 || !r.NextOK || r.NextTokens != 0 {
					t.Errorf("proxyauth: %+v; want no failures, 1 token request, next request ok", r)
				}
				if r.Upstream > 2*int64(r.Requests) {
					t.Errorf("proxyauth: %d requests at the proxy; want at most %d", r.Upstream, 2*r.Requests)
				}
			case XOAuth2.Name:
				// x/oauth2 neither resends nor drops a token that looks valid.
				if r.Failed != r.Requests || r.TokenRequests != 0 || r.NextOK {
					t.Errorf("x/oauth2: %+v; want every request failed, no token request", r)
				}
			case Azcore.Name:
				// azcore expires the token on 401, so the next request gets a new one.
				if !r.NextOK {
					t.Errorf("azcore: %+v; want the next request to succeed", r)
				}
			}
		})
	}
}

func TestOutage(t *testing.T) {
	// Waiting for the recovery and for each request is bounded only to
	// detect a hang.
	cfg := OutageConfig{
		Rate: 100, Duration: time.Second, Margin: 5 * time.Minute, TokenLatency: 10 * time.Millisecond,
		Status: 503, MaxRecovery: testutil.HangTimeout, Timeout: testutil.HangTimeout,
	}
	for _, p := range Peers() {
		t.Run(benchKey(p.Name), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r, err := Outage(context.Background(), p, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The outage lasted at most as long as the whole scenario,
			// however busy the machine was.
			total := time.Since(start)
			if r.Requests != 100 || r.Failed > r.Requests || r.P50 > r.Max {
				t.Errorf("inconsistent result %+v", r)
			}
			if !r.Recovered {
				t.Errorf("no request succeeded after the endpoint came back: %+v", r)
			}
			// Refusals are counted to the end of the run, token requests
			// during the outage and during the recovery.
			if r.TokenRequests < 1 || r.Refused < 1 || r.Refused > r.TokenRequests+r.RecoveryTokenRequests {
				t.Errorf("token requests = %d (+%d in the recovery), refused = %d; want 1 <= refused <= requests",
					r.TokenRequests, r.RecoveryTokenRequests, r.Refused)
			}
			if p.Name == ProxyAuth.Name {
				// Backoff: its steps start at no less than 100 ms (200 ms,
				// jittered down to half at most) and double, so k+1 token
				// requests are at least 100 ms * (2^k - 1) apart in all. An
				// outage of any length allows a logarithmic number; at 100
				// requests a second without a backoff there would be about
				// one per request.
				limit := int64(1)
				for k := 1; time.Duration(1<<k-1)*100*time.Millisecond <= total; k++ {
					limit = int64(k) + 1
				}
				if r.TokenRequests > limit {
					t.Errorf("proxyauth: %d token requests during an outage within %v; want at most %d", r.TokenRequests, total.Round(time.Millisecond), limit)
				}
			}
		})
	}
}
