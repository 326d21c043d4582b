package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

// RolloverConfig configures [Rollover].
type RolloverConfig struct {
	Workers         int           // goroutines sending requests back to back
	Lifetime        time.Duration // of each token (whole seconds: the endpoint sends expires_in)
	Lifetimes       int           // how many lifetimes the run lasts
	Margin          time.Duration // early-refresh margin of every peer
	TokenLatency    time.Duration // of every token request
	UpstreamLatency time.Duration // of every request to the LLM proxy
	WaitThreshold   time.Duration // a request whose auth delay exceeds it waited on the token endpoint
}

// DefaultRollover is what `make bench` runs.
var DefaultRollover = RolloverConfig{
	Workers:         64,
	Lifetime:        time.Second,
	Lifetimes:       10,
	Margin:          300 * time.Millisecond,
	TokenLatency:    100 * time.Millisecond,
	UpstreamLatency: 20 * time.Millisecond,
	WaitThreshold:   50 * time.Millisecond,
}

// RolloverResult is what one peer did in [Rollover].
type RolloverResult struct {
	Peer          string
	Requests      int           // sent in the run
	Failed        int           // the caller got an error or a status other than 200
	Waited        int           // auth delay above the threshold
	P50, P99, Max time.Duration // auth delay of the requests that reached the base
	TokenRequests int64         // token requests during the run
	CPUPressure   float64       // share of the run in which some task waited for a CPU; -1: unknown
}

// Rollover keeps cfg.Workers goroutines sending requests for
// cfg.Lifetimes token lifetimes, after one request that fetched the first
// token, and measures how long each request spent in the auth layer.
func Rollover(ctx context.Context, p Peer, cfg RolloverConfig) (RolloverResult, error) {
	e, err := newEnv(p, envConfig{
		token:  sandbox.TokenServerConfig{Lifetime: cfg.Lifetime, Latency: cfg.TokenLatency},
		proxy:  sandbox.ProxyConfig{Latency: cfg.UpstreamLatency},
		margin: cfg.Margin,
		conns:  cfg.Workers,
	})
	if err != nil {
		return RolloverResult{}, err
	}
	defer e.close()
	res := RolloverResult{Peer: p.Name}
	if o := e.send(ctx); !o.ok() {
		return res, fmt.Errorf("%s: first request: status %d", p.Name, o.status)
	}

	before := e.idp.Requests()
	pressure := startCPUPressure()
	deadline := time.Now().Add(time.Duration(cfg.Lifetimes) * cfg.Lifetime)
	per := make([][]outcome, cfg.Workers)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			// Bounded: a request takes at least UpstreamLatency, and the
			// loop also ends at the deadline.
			for i := 0; i < 1_000_000 && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				per[w] = append(per[w], e.send(ctx))
			}
		})
	}
	wg.Wait()
	res.TokenRequests = e.idp.Requests() - before
	res.CPUPressure = pressure.share()

	var delays []time.Duration
	for _, os := range per {
		for _, o := range os {
			res.Requests++
			if !o.ok() {
				res.Failed++
			}
			if o.delay >= 0 {
				delays = append(delays, o.delay)
				if o.delay > cfg.WaitThreshold {
					res.Waited++
				}
			}
		}
	}
	res.P50, res.P99, res.Max = percentiles(delays)
	return res, ctx.Err()
}

func percentiles(d []time.Duration) (p50, p99, maxD time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return at(0.50), at(0.99), d[len(d)-1]
}

// StormConfig configures [Storm].
type StormConfig struct {
	Requests     int           // sent at once, all with the revoked token
	TokenLatency time.Duration // of every token request
	Margin       time.Duration // early-refresh margin (tokens live an hour)
}

// DefaultStorm is what `make bench` runs.
var DefaultStorm = StormConfig{Requests: 1000, TokenLatency: 100 * time.Millisecond, Margin: 5 * time.Minute}

// StormResult is what one peer did in [Storm].
type StormResult struct {
	Peer          string
	Requests      int   // sent at once
	Failed        int   // the caller got an error or a status other than 200
	Upstream      int64 // requests the LLM proxy received (resends included)
	TokenRequests int64 // token requests during the storm
	NextOK        bool  // the request sent after the storm succeeded
	NextTokens    int64 // token requests that request made
}

// Storm fetches a token, revokes it at the token endpoint (so that the
// proxy answers 401 to it), then sends cfg.Requests requests at once.
func Storm(ctx context.Context, p Peer, cfg StormConfig) (StormResult, error) {
	e, err := newEnv(p, envConfig{
		token:  sandbox.TokenServerConfig{Lifetime: time.Hour, Latency: cfg.TokenLatency},
		margin: cfg.Margin,
		conns:  512,
	})
	if err != nil {
		return StormResult{}, err
	}
	defer e.close()
	res := StormResult{Peer: p.Name, Requests: cfg.Requests}
	if o := e.send(ctx); !o.ok() {
		return res, fmt.Errorf("%s: first request: status %d", p.Name, o.status)
	}
	e.idp.RevokeAll()

	tokBefore, upBefore := e.idp.Requests(), e.proxy.Requests()
	go1 := make(chan struct{})
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Requests {
		wg.Go(func() {
			<-go1
			if !e.send(ctx).ok() {
				failed.Add(1)
			}
		})
	}
	close(go1)
	wg.Wait()
	res.Failed = int(failed.Load())
	res.TokenRequests = e.idp.Requests() - tokBefore
	res.Upstream = e.proxy.Requests() - upBefore

	before := e.idp.Requests()
	res.NextOK = e.send(ctx).ok()
	res.NextTokens = e.idp.Requests() - before
	return res, ctx.Err()
}

// OutageConfig configures [Outage].
type OutageConfig struct {
	Rate         int           // requests per second, each on its own goroutine
	Duration     time.Duration // of the outage
	Margin       time.Duration // early-refresh margin
	TokenLatency time.Duration // of every token request
	Status       int           // the token endpoint's answer while down
	MaxRecovery  time.Duration // give up waiting for a successful request after this
	Timeout      time.Duration // of each request
}

// DefaultOutage is what `make bench` runs.
var DefaultOutage = OutageConfig{
	Rate:         1000,
	Duration:     5 * time.Second,
	Margin:       5 * time.Minute,
	TokenLatency: 100 * time.Millisecond,
	Status:       http.StatusServiceUnavailable,
	MaxRecovery:  40 * time.Second,
	Timeout:      30 * time.Second,
}

// OutageResult is what one peer did in [Outage].
type OutageResult struct {
	Peer          string
	Requests      int           // sent during the outage
	Failed        int           // of which the caller got an error or a status other than 200
	P50, Max      time.Duration // how long the callers of those requests waited for an answer
	TokenRequests int64         // token requests during the outage
	// Refused is how many token requests were refused in all (in a row:
	// no token was issued before); proxyauth's backoff step when it
	// recovered is 200 ms << (Refused-1), at most 30 s.
	Refused               int64
	Recovered             bool
	Recovery              time.Duration // from the endpoint's return to the end of the first successful request
	RecoveryTokenRequests int64         // token requests in that time
	CPUPressure           float64       // share of the run in which some task waited for a CPU; -1: unknown
}

// Outage fetches a token that lives one second (the tokens after it live an
// hour), takes the token endpoint down, waits for the token to expire, sends
// cfg.Rate requests a second for cfg.Duration, then brings the endpoint back
// and keeps sending until a request succeeds.
func Outage(ctx context.Context, p Peer, cfg OutageConfig) (OutageResult, error) {
	const first = time.Second
	e, err := newEnv(p, envConfig{
		token: sandbox.TokenServerConfig{
			LifetimeFunc: func(n int64) time.Duration {
				if n == 1 {
					return first
				}
				return time.Hour
			},
			Latency: cfg.TokenLatency,
		},
		margin: cfg.Margin,
		conns:  512,
	})
	if err != nil {
		return OutageResult{}, err
	}
	defer e.close()
	res := OutageResult{Peer: p.Name}
	if o := e.send(ctx); !o.ok() {
		return res, fmt.Errorf("%s: first request: status %d", p.Name, o.status)
	}
	e.idp.SetDown(cfg.Status)
	select {
	case <-time.After(first + 100*time.Millisecond):
	case <-ctx.Done():
		return res, ctx.Err()
	}

	var (
		wg      sync.WaitGroup
		failed  atomic.Int64
		up      atomic.Int64 // UnixNano when the endpoint came back; 0: down
		firstOK atomic.Int64 // UnixNano of the end of the first success after that
		mu      sync.Mutex
		waits   []time.Duration // of the requests sent during the outage
	)
	launch := func(inWindow bool) {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			defer cancel()
			o := e.send(rctx)
			if inWindow {
				mu.Lock()
				waits = append(waits, o.end.Sub(o.start))
				mu.Unlock()
			}
			if !o.ok() {
				if inWindow {
					failed.Add(1)
				}
				return
			}
			if u := up.Load(); u != 0 && o.end.UnixNano() > u {
				firstOK.CompareAndSwap(0, o.end.UnixNano())
			}
		})
	}

	// Requests go out in ticks of 10 ms, on an absolute schedule.
	const tick = 10 * time.Millisecond
	perTick := max(cfg.Rate/int(time.Second/tick), 1)
	ticks := int(cfg.Duration / tick)
	before := e.idp.Requests()
	pressure := startCPUPressure()
	start := time.Now()
	for i := range ticks {
		time.Sleep(time.Until(start.Add(time.Duration(i) * tick)))
		for range perTick {
			launch(true)
		}
	}
	time.Sleep(time.Until(start.Add(cfg.Duration)))
	res.Requests = ticks * perTick
	res.TokenRequests = e.idp.Requests() - before

	upAt := time.Now()
	upTokens := e.idp.Requests()
	up.Store(upAt.UnixNano())
	e.idp.SetDown(0)
	for i := 0; firstOK.Load() == 0 && time.Since(upAt) < cfg.MaxRecovery && ctx.Err() == nil; i++ {
		time.Sleep(time.Until(upAt.Add(time.Duration(i) * tick)))
		for range perTick {
			launch(false)
		}
	}
	if ok := firstOK.Load(); ok != 0 {
		res.Recovered = true
		res.Recovery = time.Unix(0, ok).Sub(upAt)
	}
	res.RecoveryTokenRequests = e.idp.Requests() - upTokens
	res.CPUPressure = pressure.share()
	wg.Wait()
	// A token request sent before the endpoint came back may have been
	// refused after that: count every refusal, all before the recovery.
	res.Refused = e.refused.Load()
	res.Failed = int(failed.Load())
	res.P50, _, res.Max = percentiles(waits)
	return res, ctx.Err()
}
