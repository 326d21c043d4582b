package bench

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

const msec = time.Millisecond

func TestBusiest(t *testing.T) {
	tests := []struct {
		name string
		ts   []time.Duration
		want int
	}{
		{"none", nil, 0},
		{"one", []time.Duration{5 * msec}, 1},
		{"within a window", []time.Duration{0, 99 * msec}, 2},
		// A window is [t, t+100 ms): one that starts at 0 ends before 100 ms.
		{"a window apart", []time.Duration{0, 100 * msec}, 1},
		{"the busiest later", []time.Duration{0, 150 * msec, 160 * msec, 249 * msec, 250 * msec}, 3},
		{"ties at one time", []time.Duration{7 * msec, 7 * msec, 7 * msec, 300 * msec}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := busiest(tt.ts, 100*msec); got != tt.want {
				t.Errorf("busiest(%v) = %d; want %d", tt.ts, got, tt.want)
			}
		})
	}
}

// TestAnalyzeFleet checks the accounting on a hand-made run: three
// processes, the outage from 7 s to 15 s.
func TestAnalyzeFleet(t *testing.T) {
	s := time.Second
	toks := []TokenRequest{
		{Proc: 0, At: 10 * msec, End: 12 * msec, Status: 200},
		{Proc: 2, At: 20 * msec, End: 21 * msec, Status: 500}, // no token: its next one is the cold start
		{Proc: 1, At: 60 * msec, End: 70 * msec, Status: 200},
		{Proc: 1, At: 65 * msec, End: 72 * msec, Status: 200}, // sent before the first came back: not a refresh
		{Proc: 2, At: 100 * msec, End: 101 * msec, Status: 200},
		{Proc: -1, At: 2 * s, End: 2 * s, Status: 200}, // unattributed: counted, never a refresh
		{Proc: 0, At: 3000 * msec, End: 3001 * msec, Status: 200},
		{Proc: 2, At: 3099 * msec, End: 3100 * msec, Status: 200},
		{Proc: 1, At: 3400 * msec, End: 3401 * msec, Status: 200},
		{Proc: 0, At: 6 * s, End: 6 * s, Status: 200}, // a second refresh
		{Proc: 0, At: 7 * s, End: 7 * s, Status: 503, Down: true},
		{Proc: 1, At: 9 * s, End: 9 * s, Status: 503, Down: true},
		{Proc: 1, At: 14999 * msec, End: 15001 * msec, Status: 503, Down: true},
		{Proc: 0, At: 15 * s, End: 15 * s, Status: 200},
		{Proc: 1, At: 15050 * msec, End: 15051 * msec, Status: 200},
		{Proc: 2, At: 15099 * msec, End: 15101 * msec, Status: 200},
	}
	up := 15 * s
	reqs := [][]fleetRequest{
		{
			{start: 14800 * msec, end: 14900 * msec, ok: true}, // before the recovery
			{start: 14950 * msec, end: 15200 * msec, ok: true}, // sent before, ended after: 200 ms
			{start: 15 * s, end: 15010 * msec},                 // failed after the recovery
			{start: 15300 * msec, end: 15301 * msec, ok: true},
		},
		{
			{start: 14 * s, end: 14 * s},
			{start: 15050 * msec, end: 15100 * msec, ok: true}, // 100 ms
		},
		{
			{start: 15 * s, end: 15001 * msec}, // never recovered
			{start: 16 * s, end: 16001 * msec},
		},
	}
	var r FleetResult
	analyzeFleet(&r, 100*msec, fleetTimeline{downAt: 7 * s, upAt: up, end: 17 * s}, toks, reqs)

	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	check("TokenRequests", r.TokenRequests, len(toks))
	check("Refreshes", r.Refreshes, 3)
	// Ranks 0 and int(0.9*3) = 2 of 3000, 3099, 3400 ms.
	check("RefreshP10", r.RefreshP10, 3000*msec)
	check("RefreshP90", r.RefreshP90, 3400*msec)
	check("RefreshSpread", r.RefreshSpread(), 400*msec)
	check("RefreshBusiest", r.RefreshBusiest, 2)
	check("OutageTokenRequests", r.OutageTokenRequests, 3)
	// From 15 s on: 15000, 15050 and 15099 ms in one window, the 503 at
	// 14999 ms not in it.
	check("RecoveryBusiest", r.RecoveryBusiest, 3)
	check("Requests", r.Requests, 8)
	check("Failed", r.Failed, 4)
	check("RequestsAfter", r.RequestsAfter, 5)
	check("FailedAfter", r.FailedAfter, 3)
	check("Recovered", r.Recovered, 2)
	// Ranks int(0.5*3) = 1 and int(0.9*3) = 2 of 100 ms, 200 ms and a
	// process that did not recover.
	check("RecoveryP50", r.RecoveryP50, 200*msec)
	check("RecoveryP90", r.RecoveryP90, time.Duration(-1))
	check("RecoveryMax", r.RecoveryMax, time.Duration(-1))

	// Once process 2 recovers, the slowest is known.
	reqs[2] = append(reqs[2], fleetRequest{start: 16500 * msec, end: 16700 * msec, ok: true})
	r = FleetResult{}
	analyzeFleet(&r, 100*msec, fleetTimeline{downAt: 7 * s, upAt: up, end: 17 * s}, toks, reqs)
	check("RecoveryP90 after", r.RecoveryP90, 1700*msec)
	check("RecoveryMax after", r.RecoveryMax, 1700*msec)
}

// TestFleetEndpoint checks what the endpoint answers and records, up and
// down, with and without Retry-After.
func TestFleetEndpoint(t *testing.T) {
	for _, ra := range []time.Duration{0, 2 * time.Second} {
		t.Run("retry-after="+ra.String(), func(t *testing.T) {
			ep := newFleetEndpoint(sandbox.TokenServerConfig{}, ra)
			defer ep.close()
			ep.start()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: procTagger{proc: 7, next: tr, sent: &ep.sent}}
			post := func() *http.Response {
				t.Helper()
				req, err := http.NewRequest(http.MethodPost, ep.URL, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.SetBasicAuth(ep.idp.ClientID(), ep.idp.ClientSecret())
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Body = http.NoBody
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}

			// No grant_type: the token server refuses it with 400.
			if resp := post(); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("up: status %d; want 400 from the token server", resp.StatusCode)
			}
			downAt := ep.setDown(true)
			resp := post()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("down: status %d; want 503", resp.StatusCode)
			}
			want := ""
			if ra > 0 {
				want = strconv.Itoa(int(ra / time.Second))
			}
			if got := resp.Header.Get("Retry-After"); got != want {
				t.Errorf("down: Retry-After %q; want %q", got, want)
			}
			upAt := ep.setDown(false)
			post()

			recs := ep.records()
			if len(recs) != 3 || ep.sent.Load() != 3 || ep.idp.Requests() != 2 {
				t.Fatalf("%d recorded, %d sent, %d at the token server; want 3, 3, 2: %+v", len(recs), ep.sent.Load(), ep.idp.Requests(), recs)
			}
			for i, r := range recs {
				down := i == 1
				wantStatus := map[bool]int{false: 400, true: 503}[down]
				if r.Proc != 7 || r.Down != down || r.Status != wantStatus || r.End < r.At {
					t.Errorf("record %d = %+v; want process 7, down %v, status %d", i, r, down, wantStatus)
				}
				if in := r.At >= downAt && r.At < upAt; in != down {
					t.Errorf("record %d arrived at %v, outage [%v, %v); down = %v", i, r.At, downAt, upAt, r.Down)
				}
			}
		})
	}
}

// TestFleet runs the fleet scenario at a small size for every peer and
// checks its accounting. No timings are asserted: the machine may be
// busy. Waiting for the recovery is bounded only to detect a hang.
func TestFleet(t *testing.T) {
	cfg := FleetConfig{
		Processes: 6, Workers: 2, StartWindow: 10 * msec, Pause: 20 * msec,
		Lifetime: time.Second, Margin: 500 * msec,
		// The outage outlasts every token, so that each process needs a
		// new one after it.
		OutageAt: 1200 * msec, Outage: 1500 * msec,
		After: 0, MaxRecovery: testutil.HangTimeout, Timeout: testutil.HangTimeout,
		Window: 100 * msec,
	}
	for _, p := range Peers() {
		t.Run(benchKey(p.Name), func(t *testing.T) {
			t.Parallel()
			r, err := Fleet(context.Background(), p, cfg)
			// Fleet itself checks that every token request sent was
			// recorded once and answered once.
			if err != nil {
				t.Fatal(err)
			}
			if r.Peer != p.Name || r.Processes != cfg.Processes || r.TokenRequests != len(r.Tokens) {
				t.Errorf("inconsistent result: peer %q, %d processes, %d token requests, %d recorded", r.Peer, r.Processes, r.TokenRequests, len(r.Tokens))
			}
			if !(r.DownAt < r.UpAt && r.UpAt <= r.End) || r.UpAt-r.DownAt < cfg.Outage {
				t.Errorf("outage [%v, %v), end %v; want an outage of at least %v before the end", r.DownAt, r.UpAt, r.End, cfg.Outage)
			}
			down, procs := 0, map[int]bool{}
			for i, tr := range r.Tokens {
				procs[tr.Proc] = true
				if i > 0 && tr.At < r.Tokens[i-1].At {
					t.Errorf("token request %d arrived at %v, before the one before it (%v)", i, tr.At, r.Tokens[i-1].At)
				}
				if in := tr.At >= r.DownAt && tr.At < r.UpAt; in != tr.Down || tr.Down != (tr.Status == http.StatusServiceUnavailable) {
					t.Errorf("token request %+v; outage [%v, %v)", tr, r.DownAt, r.UpAt)
				}
				if tr.Down {
					down++
				}
			}
			if down != r.OutageTokenRequests || down == 0 {
				t.Errorf("OutageTokenRequests = %d; %d answered by the outage, want at least 1", r.OutageTokenRequests, down)
			}
			for i := range cfg.Processes {
				if !procs[i] {
					t.Errorf("process %d sent no token request", i)
				}
			}
			if procs[-1] || len(procs) != cfg.Processes {
				t.Errorf("token requests came from processes %v; want 0 to %d", procs, cfg.Processes-1)
			}
			if r.Recovered != cfg.Processes || r.RecoveryMax < 0 {
				t.Fatalf("%d of %d processes recovered (slowest %v)", r.Recovered, cfg.Processes, r.RecoveryMax)
			}
			if !(0 < r.RecoveryP50 && r.RecoveryP50 <= r.RecoveryP90 && r.RecoveryP90 <= r.RecoveryMax && r.RecoveryMax <= r.End-r.UpAt) {
				t.Errorf("recovery p50 %v, p90 %v, max %v; want 0 < p50 <= p90 <= max <= %v", r.RecoveryP50, r.RecoveryP90, r.RecoveryMax, r.End-r.UpAt)
			}
			if r.Failed > r.Requests || r.FailedAfter > r.RequestsAfter || r.RequestsAfter > r.Requests {
				t.Errorf("requests %d (failed %d), after recovery %d (failed %d)", r.Requests, r.Failed, r.RequestsAfter, r.FailedAfter)
			}
			if r.Refreshes > cfg.Processes || r.RefreshBusiest > r.Refreshes || r.RefreshP10 > r.RefreshP90 {
				t.Errorf("refreshes %d, busiest %d, p10 %v, p90 %v", r.Refreshes, r.RefreshBusiest, r.RefreshP10, r.RefreshP90)
			}
			if r.RecoveryBusiest < 1 {
				t.Errorf("RecoveryBusiest = %d; want at least the one token request each process needed", r.RecoveryBusiest)
			}
			if p.Name == ProxyAuth.Name {
				// Backoff: steps of no less than 100 ms that double, so a
				// process sends k+1 token requests in at least
				// 100 ms * (2^k - 1), however long the outage lasted.
				limit := 1
				for k := 1; time.Duration(1<<k-1)*100*msec <= r.UpAt-r.DownAt; k++ {
					limit = k + 1
				}
				if down > limit*cfg.Processes {
					t.Errorf("proxyauth: %d token requests during an outage of %v; want at most %d per process", down, r.UpAt-r.DownAt, limit)
				}
			}
		})
	}
}

// TestProcTagger checks that the tagger marks a copy, not the caller's
// request, and counts each send.
func TestProcTagger(t *testing.T) {
	var sent atomic.Int64
	var got string
	tg := procTagger{proc: 3, sent: &sent, next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get(procHeader)
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})}
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, err := tg.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got != "3" || sent.Load() != 2 || req.Header.Get(procHeader) != "" {
		t.Errorf("header %q, sent %d, caller's header %q; want \"3\", 2, none", got, sent.Load(), req.Header.Get(procHeader))
	}
}
