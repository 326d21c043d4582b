package bench

import (
	"strings"
	"testing"
	"time"
)

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 44731: "44,731", 1234567: "1,234,567", -5: "-5"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q; want %q", n, got, want)
		}
	}
}

// criteria returns the verdict of each row of the criteria table.
func criteria(t *testing.T, rs []FleetResult) []string {
	t.Helper()
	var b strings.Builder
	WriteFleetCriteria(&b, DefaultFleet, rs)
	var verdicts []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n")[2:] {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		verdicts = append(verdicts, cells[len(cells)-1])
	}
	return verdicts
}

func TestWriteFleetCriteria(t *testing.T) {
	// proxyauth meets every criterion, each at its bound.
	base := func() []FleetResult {
		return []FleetResult{
			{Peer: "proxyauth", Processes: 200, Refreshes: 200, RefreshP10: 3 * time.Second, RefreshP90: 3400 * msec,
				RecoveryBusiest: 50, OutageTokenRequests: 600, RecoveryP90: 30 * time.Second},
			{Peer: "x/oauth2", Processes: 200, Refreshes: 200, RefreshP10: 3 * time.Second, RefreshP90: 3099 * msec, OutageTokenRequests: 40000},
			{Peer: "azcore", Processes: 200, Refreshes: 200, RefreshP10: 6 * time.Second, RefreshP90: 6099 * msec, OutageTokenRequests: 3000},
			// A run with Retry-After is not judged.
			{Peer: "proxyauth", RetryAfter: time.Second, Processes: 200, RecoveryBusiest: 200, OutageTokenRequests: 10000, RecoveryP90: -1},
		}
	}
	all := []string{"met", "met", "met", "met", "met"}
	tests := []struct {
		name   string
		mutate func(rs []FleetResult)
		want   []string
	}{
		{"at the bounds", func([]FleetResult) {}, all},
		{"spread under 400 ms", func(rs []FleetResult) { rs[0].RefreshP90 = 3399 * msec }, []string{"**missed**", "met", "met", "met", "met"}},
		{"a peer spread 100 ms", func(rs []FleetResult) { rs[2].RefreshP90 = 6100 * msec }, []string{"met", "**missed**", "met", "met", "met"}},
		{"over P/4 after recovery", func(rs []FleetResult) { rs[0].RecoveryBusiest = 51 }, []string{"met", "met", "**missed**", "met", "met"}},
		{"over a fifth of the better peer", func(rs []FleetResult) { rs[0].OutageTokenRequests = 601 }, []string{"met", "met", "met", "**missed**", "met"}},
		{"recovery p90 over 30 s", func(rs []FleetResult) { rs[0].RecoveryP90 = 30*time.Second + msec }, []string{"met", "met", "met", "met", "**missed**"}},
		{"p90 not recovered", func(rs []FleetResult) { rs[0].RecoveryP90 = -1 }, []string{"met", "met", "met", "met", "**missed**"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := base()
			tt.mutate(rs)
			got := criteria(t, rs)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("verdicts %v; want %v", got, tt.want)
			}
		})
	}
}

func TestWriteFleet(t *testing.T) {
	rs := []FleetResult{
		{Peer: "proxyauth", Processes: 200, Refreshes: 200, RefreshP10: 3 * time.Second, RefreshP90: 3456 * msec, RefreshBusiest: 40,
			OutageTokenRequests: 600, RecoveryBusiest: 45, Recovered: 199, RecoveryP50: 1500 * msec, RecoveryP90: 2 * time.Second, RecoveryMax: -1,
			RequestsAfter: 20000, FailedAfter: 1234, CPUPressure: -1},
		{Peer: "proxyauth", RetryAfter: 2 * time.Second, Processes: 200, RecoveryP90: -1, CPUPressure: 0.25},
	}
	var b strings.Builder
	WriteFleet(&b, DefaultFleet, []Peer{ProxyAuth}, rs, "bench/fleet.svg")
	out := b.String()
	for _, want := range []string{
		"| | proxyauth | proxyauth, Retry-After: 2 |",
		"| refresh requests, p10–p90 spread | 456 ms | 0 ms |",
		"| refresh requests in the busiest 100 ms | 40 of 200 | 0 of 0 |",
		"| token requests during the 8 s outage | 600 | 0 |",
		"| recovery to first success, p50 / p90 | 1.50 s / 2.00 s | 0.00 s / not recovered |",
		"| recovery, slowest process | 1 of 200 not recovered |",
		"| requests failed after recovery | 1,234 of 20,000 | 0 of 0 |",
		"| CPU pressure | n/a | 25% |",
		"![Token requests per 100 ms over time, one panel per peer, the outage shaded](bench/fleet.svg)",
		"A column with *Retry-After*",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
