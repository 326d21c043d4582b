package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

// FleetConfig configures [Fleet].
type FleetConfig struct {
	Processes   int           // each with a stack of its own
	Workers     int           // per process, each sending requests with Pause between them
	StartWindow time.Duration // the processes start evenly spread over it
	Pause       time.Duration // between two requests of one worker
	Lifetime    time.Duration // of each token (whole seconds: the endpoint sends expires_in)
	Margin      time.Duration // early-refresh margin of every peer
	OutageAt    time.Duration // from the first start to the outage
	Outage      time.Duration // how long the token endpoint answers 503
	// RetryAfter, if positive, goes out as a Retry-After header (whole
	// seconds, at least 1) with every 503 of the outage.
	RetryAfter time.Duration
	// After the outage the run goes on until every process has had a
	// successful request and After has passed, or until MaxRecovery has
	// passed.
	After, MaxRecovery time.Duration
	Timeout            time.Duration // of each request, and of each token request
	Window             time.Duration // of the busiest-window counts and of the figure's bins
}

// DefaultFleet is what `make bench` runs. The outage starts after every
// peer's first refresh: azcore refreshes a 6 s token only when it has
// expired, since it starts at most one early refresh per 30 s.
var DefaultFleet = FleetConfig{
	Processes:   200,
	Workers:     2,
	StartWindow: 100 * time.Millisecond,
	Pause:       50 * time.Millisecond,
	Lifetime:    6 * time.Second,
	Margin:      3 * time.Second,
	OutageAt:    7 * time.Second,
	Outage:      8 * time.Second,
	After:       3 * time.Second,
	MaxRecovery: 35 * time.Second,
	Timeout:     10 * time.Second,
	Window:      100 * time.Millisecond,
}

// TokenRequest is one request that reached the token endpoint. Times are
// from the start of the run.
type TokenRequest struct {
	Proc    int           // the process that sent it; -1: unknown
	At, End time.Duration // arrival, and end of the answer
	Status  int
	Down    bool // answered by the outage
}

// FleetResult is what one peer's fleet did in [Fleet].
type FleetResult struct {
	Peer       string
	Processes  int
	RetryAfter time.Duration // sent with the outage's 503s; 0: none

	Requests      int // sent by all workers in the run
	Failed        int // of which the caller got an error or a status other than 200
	TokenRequests int // in the run

	// The first refresh wave: each process's first token request after
	// its first token was issued.
	Refreshes              int
	RefreshP10, RefreshP90 time.Duration // from the start of the run
	RefreshBusiest         int           // most refresh requests in any Window

	DownAt, UpAt, End   time.Duration // the outage, and the end of the run
	OutageTokenRequests int           // answered by the outage
	RecoveryBusiest     int           // most token requests in any Window from UpAt on

	// Recovery of each process: from UpAt to the end of its first
	// successful request that ended after UpAt. A percentile that falls
	// on a process that did not recover is -1.
	Recovered                             int
	RecoveryP50, RecoveryP90, RecoveryMax time.Duration
	RequestsAfter, FailedAfter            int // sent from UpAt on, and of those failed

	CPUPressure float64 // share of the run in which some task waited for a CPU; -1: unknown

	Tokens []TokenRequest // every token request, in order of arrival
}

// RefreshSpread is the time from the 10th to the 90th percentile of the
// first refresh wave.
func (r FleetResult) RefreshSpread() time.Duration { return r.RefreshP90 - r.RefreshP10 }

// fleetRequest is one request of a worker. Times are from the start of
// the run.
type fleetRequest struct {
	start, end time.Duration
	ok         bool
}

// procHeader carries the number of the process that sent a token request,
// so that the endpoint can attribute it.
const procHeader = "Fleet-Process"

// Fleet starts cfg.Processes processes, each with its own stack of peer p
// (its own auth layer, credential and http.Transport to the token
// endpoint), spread over cfg.StartWindow, each with cfg.Workers workers
// that keep sending requests. The upstream is in memory and accepts only
// tokens that the token endpoint (a [sandbox.TokenServer] on loopback)
// holds valid. At cfg.OutageAt the endpoint answers 503 for cfg.Outage;
// every token request's arrival and answer is recorded.
func Fleet(ctx context.Context, p Peer, cfg FleetConfig) (FleetResult, error) {
	res := FleetResult{Peer: p.Name, Processes: cfg.Processes, RetryAfter: cfg.RetryAfter}
	if cfg.Processes < 1 || cfg.Workers < 1 || cfg.Pause <= 0 || cfg.Window <= 0 {
		return res, fmt.Errorf("bench: a fleet needs processes, workers, a pause and a window: %+v", cfg)
	}
	ep := newFleetEndpoint(sandbox.TokenServerConfig{Lifetime: cfg.Lifetime}, cfg.RetryAfter)
	defer ep.close()

	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		status := http.StatusUnauthorized
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && ep.idp.Valid(tok) {
			status = http.StatusOK
		}
		return &http.Response{
			StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
			Header: http.Header{}, Body: http.NoBody, Request: r,
		}, nil
	})

	procs := make([]*fleetProc, cfg.Processes)
	defer func() {
		for _, pr := range procs {
			if pr != nil {
				pr.tokens.CloseIdleConnections()
			}
		}
	}()
	for i := range procs {
		pr := &fleetProc{
			tokens: &http.Transport{MaxIdleConnsPerHost: 2, ResponseHeaderTimeout: cfg.Timeout},
			reqs:   make([][]fleetRequest, cfg.Workers),
		}
		src := Source{Endpoint: &Endpoint{
			TokenURL:     ep.URL,
			ClientID:     ep.idp.ClientID(),
			ClientSecret: ep.idp.ClientSecret(),
			HTTPClient:   &http.Client{Transport: procTagger{proc: i, next: pr.tokens, sent: &ep.sent}, Timeout: cfg.Timeout},
		}}
		rt, err := p.New(src, base, cfg.Margin)
		if err != nil {
			return res, err
		}
		pr.rt = rt
		procs[i] = pr
	}

	var (
		wg        sync.WaitGroup
		stop      = make(chan struct{})
		up        atomic.Int64 // UpAt in nanoseconds; 0: not yet
		recovered atomic.Int64 // processes with a success after UpAt
	)
	// A worker sends on a schedule of its own, every Pause from its
	// process's start (the workers of a process evenly apart), skipping
	// the times a request outlasted: the request that finds a token due
	// then comes at the same point after the refresh point in every
	// process, so that the refresh spread is the peer's and the start
	// window's, not the phase of each worker's pauses.
	worker := func(pr *fleetProc, w int, start time.Duration) {
		next := start + time.Duration(w)*cfg.Pause/time.Duration(cfg.Workers)
		// Bounded: the loop also ends when the run stops.
		for range 10_000_000 {
			timer := time.NewTimer(time.Until(ep.t0.Add(next)))
			select {
			case <-timer.C:
			case <-stop:
				timer.Stop()
				return
			case <-ctx.Done():
				timer.Stop()
				return
			}
			o := pr.send(ctx, ep.since, cfg.Timeout)
			pr.reqs[w] = append(pr.reqs[w], o)
			if u := up.Load(); o.ok && u != 0 && int64(o.end) > u && pr.recovered.CompareAndSwap(false, true) {
				recovered.Add(1)
			}
			next += cfg.Pause
			if late := o.end - next; late > 0 {
				next += (late/cfg.Pause + 1) * cfg.Pause
			}
		}
	}

	// The previous run's stacks are garbage: collect them now rather
	// than during this run.
	runtime.GC()
	pressure := startCPUPressure()
	ep.start()
	for i, pr := range procs {
		start := time.Duration(i) * cfg.StartWindow / time.Duration(cfg.Processes)
		for w := range cfg.Workers {
			wg.Go(func() { worker(pr, w, start) })
		}
	}
	sleepUntil(ctx, ep.t0.Add(cfg.OutageAt))
	downAt := ep.setDown(true)
	sleepUntil(ctx, ep.t0.Add(downAt+cfg.Outage))
	upAt := ep.setDown(false)
	up.Store(int64(upAt))
	for ctx.Err() == nil {
		since := ep.since() - upAt
		if since >= cfg.MaxRecovery || (since >= cfg.After && recovered.Load() == int64(cfg.Processes)) {
			break
		}
		sleepUntil(ctx, time.Now().Add(50*time.Millisecond))
	}
	close(stop)
	wg.Wait()
	res.CPUPressure = pressure.share()
	end := ep.since()

	reqs := make([][]fleetRequest, len(procs))
	for i, pr := range procs {
		for _, rs := range pr.reqs {
			reqs[i] = append(reqs[i], rs...)
		}
	}
	tl := fleetTimeline{downAt: downAt, upAt: upAt, end: end}
	recs := ep.records()
	analyzeFleet(&res, cfg.Window, tl, recs, reqs)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// Every token request counted once: as the processes sent it, as
	// the endpoint recorded it, and as the token server or the outage
	// answered it.
	if sent, served := ep.sent.Load(), ep.idp.Requests()+int64(res.OutageTokenRequests); sent != int64(len(recs)) || served != sent {
		return res, fmt.Errorf("%s: %d token requests sent, %d recorded, %d answered", p.Name, sent, len(recs), served)
	}
	return res, nil
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// fleetProc is one process: its auth layer, its transport to the token
// endpoint, and what each of its workers sent.
type fleetProc struct {
	rt        http.RoundTripper
	tokens    *http.Transport
	reqs      [][]fleetRequest // by worker
	recovered atomic.Bool
}

func (pr *fleetProc) send(ctx context.Context, since func() time.Duration, timeout time.Duration) fleetRequest {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	o := fleetRequest{start: since()}
	// Loopback, so that proxyauth sends a token over plain http; the base
	// is in memory and never dials it.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1/v1/models", nil)
	if err == nil {
		var resp *http.Response
		resp, err = pr.rt.RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			o.ok = resp.StatusCode == http.StatusOK
		}
	}
	o.end = since()
	return o
}

// procTagger marks each token request with the number of its process and
// counts what the processes sent.
type procTagger struct {
	proc int
	next http.RoundTripper
	sent *atomic.Int64
}

func (t procTagger) RoundTrip(r *http.Request) (*http.Response, error) {
	c := new(http.Request)
	*c = *r
	c.Header = r.Header.Clone()
	c.Header.Set(procHeader, strconv.Itoa(t.proc))
	t.sent.Add(1)
	return t.next.RoundTrip(c)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fleetEndpoint is the token endpoint of a fleet: a [sandbox.TokenServer]
// behind a loopback server of its own, which can be down and records
// every token request. The arrival time and the outage are read under one
// lock, so that a request is answered by the outage exactly when it
// arrived between DownAt and UpAt.
type fleetEndpoint struct {
	URL        string
	idp        *sandbox.TokenServer
	srv        *httptest.Server
	retryAfter time.Duration
	sent       atomic.Int64 // token requests the processes sent

	mu   sync.Mutex
	t0   time.Time
	down bool
	recs []TokenRequest
}

func newFleetEndpoint(cfg sandbox.TokenServerConfig, retryAfter time.Duration) *fleetEndpoint {
	e := &fleetEndpoint{idp: sandbox.NewTokenServer(cfg), retryAfter: retryAfter, t0: time.Now()}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	e.URL = e.srv.URL + "/oauth2/token"
	return e
}

func (e *fleetEndpoint) close() {
	e.srv.Close()
	e.idp.Close()
}

// start sets the start of the run, from which every time is counted.
func (e *fleetEndpoint) start() {
	e.mu.Lock()
	e.t0 = time.Now()
	e.mu.Unlock()
}

// since returns the time since the start of the run. Only the goroutine
// that called start, and goroutines it started after that, may call it.
func (e *fleetEndpoint) since() time.Duration { return time.Since(e.t0) }

// setDown takes the endpoint down or brings it back, and returns when.
func (e *fleetEndpoint) setDown(down bool) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = down
	return time.Since(e.t0)
}

func (e *fleetEndpoint) records() []TokenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := slices.Clone(e.recs)
	slices.SortStableFunc(rs, func(a, b TokenRequest) int { return cmp.Compare(a.At, b.At) })
	return rs
}

func (e *fleetEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	rec := TokenRequest{Proc: -1, At: time.Since(e.t0), Down: e.down}
	e.mu.Unlock()
	if n, err := strconv.Atoi(r.Header.Get(procHeader)); err == nil {
		rec.Proc = n
	}
	if rec.Down {
		// As Entra and Okta answer when they cannot issue tokens.
		if e.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(max(int(e.retryAfter/time.Second), 1)))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"temporarily_unavailable","error_description":"the token service is down"}`)
		rec.Status = http.StatusServiceUnavailable
	} else {
		sw := &statusWriter{ResponseWriter: w}
		e.idp.ServeHTTP(sw, r)
		rec.Status = sw.status
		if rec.Status == 0 {
			rec.Status = http.StatusOK
		}
	}
	e.mu.Lock()
	rec.End = time.Since(e.t0)
	e.recs = append(e.recs, rec)
	e.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

// fleetTimeline is when the outage began and ended and when the run ended,
// from the start of the run.
type fleetTimeline struct{ downAt, upAt, end time.Duration }

// analyzeFleet fills r from the token requests (in order of arrival) and
// each process's requests.
func analyzeFleet(r *FleetResult, window time.Duration, tl fleetTimeline, toks []TokenRequest, reqs [][]fleetRequest) {
	r.DownAt, r.UpAt, r.End = tl.downAt, tl.upAt, tl.end
	r.Tokens = toks
	r.TokenRequests = len(toks)

	// The first refresh wave.
	issued := map[int]time.Duration{} // end of each process's first issued token
	refreshed := map[int]bool{}
	var refresh []time.Duration
	for _, t := range toks {
		if t.Proc < 0 {
			continue
		}
		first, ok := issued[t.Proc]
		switch {
		case !ok:
			if t.Status == http.StatusOK {
				issued[t.Proc] = t.End
			}
		case t.At > first && !refreshed[t.Proc]:
			refreshed[t.Proc] = true
			refresh = append(refresh, t.At)
		}
	}
	slices.Sort(refresh)
	r.Refreshes = len(refresh)
	if len(refresh) > 0 {
		r.RefreshP10, r.RefreshP90 = quantile(refresh, 0.1), quantile(refresh, 0.9)
	}
	r.RefreshBusiest = busiest(refresh, window)

	var after []time.Duration
	for _, t := range toks {
		if t.Down {
			r.OutageTokenRequests++
		} else if t.At >= tl.upAt {
			after = append(after, t.At)
		}
	}
	r.RecoveryBusiest = busiest(after, window)

	var rec []time.Duration
	for _, os := range reqs {
		first := time.Duration(-1)
		for _, o := range os {
			r.Requests++
			if !o.ok {
				r.Failed++
			}
			if o.start >= tl.upAt {
				r.RequestsAfter++
				if !o.ok {
					r.FailedAfter++
				}
			}
			if o.ok && o.end > tl.upAt && (first < 0 || o.end < first) {
				first = o.end
			}
		}
		if first >= 0 {
			rec = append(rec, first-tl.upAt)
		}
	}
	slices.Sort(rec)
	r.Recovered = len(rec)
	// Processes that did not recover count as the slowest.
	at := func(q float64) time.Duration {
		i := int(q * float64(len(reqs)))
		if i >= len(rec) {
			return -1
		}
		return rec[i]
	}
	r.RecoveryP50, r.RecoveryP90 = at(0.5), at(0.9)
	r.RecoveryMax = -1
	if len(rec) == len(reqs) && len(rec) > 0 {
		r.RecoveryMax = rec[len(rec)-1]
	}
}

// quantile returns the q-quantile of sorted d, by rank.
func quantile(d []time.Duration, q float64) time.Duration {
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// busiest returns the most of sorted ts that fall into any window
// [t, t+w). Such a window holding the most can start at one of them.
func busiest(ts []time.Duration, w time.Duration) int {
	most, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j] < ts[i]+w {
			j++
		}
		most = max(most, j-i)
	}
	return most
}
