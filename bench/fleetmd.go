package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// fleetMaxBackoff is proxyauth's longest backoff step (DESIGN.md): the
// bound of the fleet's recovery p90.
const fleetMaxBackoff = 30 * time.Second

// Label names a fleet run in the tables: the peer, and the Retry-After
// of the outage if there was one.
func (r FleetResult) Label() string {
	if r.RetryAfter > 0 {
		return fmt.Sprintf("%s, Retry-After: %d", r.Peer, max(int(r.RetryAfter/time.Second), 1))
	}
	return r.Peer
}

// WriteFleet writes the fleet table and, if figure is not empty, a link
// to the figure at that path.
func WriteFleet(w io.Writer, cfg FleetConfig, peers []Peer, rs []FleetResult, figure string) {
	fmt.Fprintf(w, "%d processes, each with a stack of its own (its auth layer, its credential, its `http.Transport` "+
		"to the token endpoint), start evenly spread over %s; each has %d workers, each sending a request every %s "+
		"from its process's start (evenly apart, skipping the times a request outlasts). One token endpoint on loopback (`internal/sandbox.TokenServer`) issues %s tokens; "+
		"every peer refreshes %s before expiry (azcore starts at most one early refresh per 30 s, so with these "+
		"tokens it refreshes when they expire). The upstream is in memory and accepts only tokens the endpoint holds "+
		"valid: the load of interest is on the identity provider. %s after the first start, the endpoint answers "+
		"503 for %s, without Retry-After (the peers ignore it). The run goes on until every process has had a "+
		"successful request after the outage and at least %s has passed, at most %s. The peers run one after "+
		"another on the same machine.\n\n",
		cfg.Processes, human(cfg.StartWindow), cfg.Workers, human(cfg.Pause), human(cfg.Lifetime), human(cfg.Margin),
		human(cfg.OutageAt), human(cfg.Outage), human(cfg.After), human(cfg.MaxRecovery))
	writeConfigs(w, peers, cfg.Margin)
	fmt.Fprintf(w, "- *Refresh requests*: each process's first token request after its first token was issued; their "+
		"spread from the 10th to the 90th percentile, and the most in any %s.\n", human(cfg.Window))
	fmt.Fprintln(w, "- *During the outage*: token requests answered with 503.")
	fmt.Fprintf(w, "- *After recovery*: the most token requests in any %s from the moment the endpoint came back.\n", human(cfg.Window))
	fmt.Fprintln(w, "- *Recovery*: for each process, from the endpoint's return to the end of its first successful request; "+
		"every token had expired by then, so that request used a new one.")
	fmt.Fprintln(w, "- *Failed after recovery*: requests sent after the endpoint came back that failed.")
	if hasRetryAfter(rs) {
		fmt.Fprintln(w, "- A column with *Retry-After* is proxyauth again, in a run whose 503s carry that header.")
	}
	fmt.Fprintln(w)

	labels := make([]string, len(rs))
	for i, r := range rs {
		labels[i] = r.Label()
	}
	fmt.Fprintf(w, "| | %s |\n", strings.Join(labels, " | "))
	fmt.Fprintf(w, "|---|%s\n", strings.Repeat("---:|", len(rs)))
	row := func(name string, f func(r FleetResult) string) {
		cells := make([]string, len(rs))
		for i, r := range rs {
			cells[i] = f(r)
		}
		fmt.Fprintf(w, "| %s | %s |\n", name, strings.Join(cells, " | "))
	}
	row("refresh requests, p10–p90 spread", func(r FleetResult) string { return msInt(r.RefreshSpread()) })
	row(fmt.Sprintf("refresh requests in the busiest %s", human(cfg.Window)), func(r FleetResult) string {
		return fmt.Sprintf("%d of %d", r.RefreshBusiest, r.Refreshes)
	})
	row(fmt.Sprintf("token requests during the %s outage", human(cfg.Outage)), func(r FleetResult) string { return count(r.OutageTokenRequests) })
	row(fmt.Sprintf("token requests in the busiest %s after recovery", human(cfg.Window)), func(r FleetResult) string { return count(r.RecoveryBusiest) })
	row("recovery to first success, p50 / p90", func(r FleetResult) string {
		return recovery(r.RecoveryP50) + " / " + recovery(r.RecoveryP90)
	})
	row("recovery, slowest process", func(r FleetResult) string {
		if r.RecoveryMax < 0 {
			return fmt.Sprintf("%d of %d not recovered", r.Processes-r.Recovered, r.Processes)
		}
		return recovery(r.RecoveryMax)
	})
	row("requests failed after recovery", func(r FleetResult) string {
		return fmt.Sprintf("%s of %s", count(r.FailedAfter), count(r.RequestsAfter))
	})
	row("token requests in the run", func(r FleetResult) string { return count(r.TokenRequests) })
	row("requests in the run (failed)", func(r FleetResult) string {
		return fmt.Sprintf("%s (%s)", count(r.Requests), count(r.Failed))
	})
	row("run length", func(r FleetResult) string { return seconds(r.End) })
	row("CPU pressure", func(r FleetResult) string { return percent(r.CPUPressure) })
	fmt.Fprintln(w)
	fmt.Fprintln(w, fleetPressureNote)
	fmt.Fprintln(w)
	if figure != "" {
		fmt.Fprintf(w, "![Token requests per %s over time, one panel per peer, the outage shaded](%s)\n\n", human(cfg.Window), figure)
	}
}

const fleetPressureNote = "*CPU pressure* is the share of that peer's run in which some task on the machine was ready " +
	"to run but waited for a CPU (Linux PSI `some`, 2 cores shared with other work). Where it is high, requests and " +
	"refreshes go out later than their timers say, which moves the spreads by tens of milliseconds, and a peer that " +
	"sends a token request per request sends fewer."

func hasRetryAfter(rs []FleetResult) bool {
	for _, r := range rs {
		if r.RetryAfter > 0 {
			return true
		}
	}
	return false
}

// human writes d as "6 s" or "100 ms".
func human(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
	return d.String()
}

func msInt(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

func recovery(d time.Duration) string {
	if d < 0 {
		return "not recovered"
	}
	return seconds(d)
}

// count writes n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// WriteFleetCriteria writes one table row per criterion of the fleet
// scenario, evaluated on proxyauth's run without Retry-After against the
// other peers' runs.
func WriteFleetCriteria(w io.Writer, cfg FleetConfig, rs []FleetResult) {
	var mine *FleetResult
	var others []FleetResult
	for i, r := range rs {
		switch {
		case r.RetryAfter > 0:
		case r.Peer == ProxyAuth.Name:
			mine = &rs[i]
		default:
			others = append(others, r)
		}
	}
	if mine == nil {
		return
	}
	fmt.Fprint(w, TargetsHeader)
	row := func(target, measured string, met bool) {
		verdict := "met"
		if !met {
			verdict = "**missed**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", target, measured, verdict)
	}

	row(fmt.Sprintf("refresh requests spread over ≥ 400 ms (p10–p90) with %s tokens", human(cfg.Lifetime)),
		msInt(mine.RefreshSpread()), mine.Refreshes > 0 && mine.RefreshSpread() >= 400*time.Millisecond)
	// The other half of that criterion: the start window alone spreads
	// the peers' refreshes over 80% of it.
	if len(others) > 0 {
		var spreads []string
		met := true
		for _, o := range others {
			spreads = append(spreads, fmt.Sprintf("%s %s", o.Peer, msInt(o.RefreshSpread())))
			met = met && o.Refreshes > 0 && o.RefreshSpread() < 100*time.Millisecond
		}
		row("… where the peers have < 100 ms", strings.Join(spreads, ", "), met)
	}

	quarter := mine.Processes / 4
	row(fmt.Sprintf("≤ P/4 = %d token requests in any %s after recovery", quarter, human(cfg.Window)),
		fmt.Sprint(mine.RecoveryBusiest), mine.RecoveryBusiest <= quarter)

	if len(others) > 0 {
		better := others[0]
		for _, o := range others[1:] {
			if o.OutageTokenRequests < better.OutageTokenRequests {
				better = o
			}
		}
		row("≤ a fifth of the better peer's token requests during the outage",
			fmt.Sprintf("%s; %s sent %s, a fifth is %s", count(mine.OutageTokenRequests), better.Peer,
				count(better.OutageTokenRequests), count(better.OutageTokenRequests/5)),
			mine.OutageTokenRequests <= better.OutageTokenRequests/5)
	}

	row(fmt.Sprintf("recovery p90 within one maximum backoff step (%s)", human(fleetMaxBackoff)),
		recovery(mine.RecoveryP90), mine.RecoveryP90 >= 0 && mine.RecoveryP90 <= fleetMaxBackoff)
}
