package bench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

// Markdown tables of the scenario results, as they go into BENCHMARKS.md.

func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func writeConfigs(w io.Writer, peers []Peer, margin time.Duration) {
	fmt.Fprintln(w, "Peers:")
	fmt.Fprintln(w)
	for _, p := range peers {
		fmt.Fprintf(w, "- **%s**: %s\n", p.Name, p.Configuration(margin))
	}
	fmt.Fprintln(w)
}

// WriteRollover writes the rollover table.
func WriteRollover(w io.Writer, cfg RolloverConfig, peers []Peer, rs []RolloverResult) {
	fmt.Fprintf(w, "%d workers send chat completions back to back for %d token lifetimes of %v "+
		"(%v in all, after one request that fetched the first token). The token endpoint takes %v, "+
		"the LLM proxy %v. Early-refresh margin %v for every peer. *Auth delay* is the time from the "+
		"outermost RoundTripper to the base under the auth layer, measured the same way for every peer; "+
		"a request *waited* when its auth delay exceeded %v.\n\n",
		cfg.Workers, cfg.Lifetimes, cfg.Lifetime, time.Duration(cfg.Lifetimes)*cfg.Lifetime,
		cfg.TokenLatency, cfg.UpstreamLatency, cfg.Margin, cfg.WaitThreshold)
	writeConfigs(w, peers, cfg.Margin)
	fmt.Fprintf(w, "| peer | requests | waited (> %v) | auth delay p50 | p99 | max | token requests | failed | CPU pressure |\n", cfg.WaitThreshold)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %d | %d | %s |\n",
			r.Peer, r.Requests, r.Waited, ms(r.P50), ms(r.P99), ms(r.Max), r.TokenRequests, r.Failed, percent(r.CPUPressure))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, pressureNote)
	fmt.Fprintln(w)
}

const pressureNote = "*CPU pressure* is the share of that peer's run in which some task on the machine was ready " +
	"to run but waited for a CPU (Linux PSI `some`, 2 cores shared with other work). Where it is high, a thread " +
	"can be off its CPU for tens of milliseconds while it holds a request: delays of that order, and a few " +
	"requests over the threshold, are the machine, not the auth layer."

func percent(f float64) string {
	if f < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// WriteStorm writes the 401 storm table.
func WriteStorm(w io.Writer, cfg StormConfig, peers []Peer, rs []StormResult) {
	fmt.Fprintf(w, "A token is fetched, then revoked at the token endpoint, so that the LLM proxy answers 401 "+
		"to it; then %d requests go out at once. The token endpoint takes %v; tokens live an hour; "+
		"early-refresh margin %v. *Failed* is what the callers saw (only proxyauth resends); "+
		"*at the proxy* counts resends too; *next request* is one more request after the storm.\n\n",
		cfg.Requests, cfg.TokenLatency, cfg.Margin)
	writeConfigs(w, peers, cfg.Margin)
	fmt.Fprintln(w, "| peer | requests | failed | at the proxy | token requests | next request |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	for _, r := range rs {
		next := "failed (401)"
		if r.NextOK {
			next = "succeeded"
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s, %d token requests |\n",
			r.Peer, r.Requests, r.Failed, r.Upstream, r.TokenRequests, next, r.NextTokens)
	}
	fmt.Fprintln(w)
}

// WriteOutage writes the identity provider outage table.
func WriteOutage(w io.Writer, cfg OutageConfig, peers []Peer, rs []OutageResult) {
	fmt.Fprintf(w, "A token that lives 1 s is fetched (the tokens after it live an hour), the token endpoint goes down "+
		"(%d), and the token expires. Then %d requests a second go out for %v, each on its own goroutine with a %v "+
		"timeout. The endpoint then comes back and requests keep going out until one succeeds. The token "+
		"endpoint takes %v per request, also while down. *Failed* and *caller wait* are of the requests sent "+
		"during the outage, as their callers saw them (a request still waiting when the endpoint comes back "+
		"can succeed). *Recovery* is from the endpoint's return to the end of the first successful request.\n\n",
		cfg.Status, cfg.Rate, cfg.Duration, cfg.Timeout, cfg.TokenLatency)
	writeConfigs(w, peers, cfg.Margin)
	fmt.Fprintf(w, "| peer | requests during outage | failed | caller wait p50 | max | token requests during outage | recovery | token requests to recover | CPU pressure |\n")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		rec := "none within " + seconds(cfg.MaxRecovery)
		if r.Recovered {
			rec = seconds(r.Recovery)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %d | %s | %d | %s |\n",
			r.Peer, r.Requests, r.Failed, ms(r.P50), seconds(r.Max), r.TokenRequests, rec, r.RecoveryTokenRequests, percent(r.CPUPressure))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, pressureNote)
	fmt.Fprintln(w)
}

// Targets are proxyauth's scenario targets with the measured figures.
type Targets struct {
	Rollover *RolloverResult
	Storm    *StormResult
	Outage   *OutageResult
	OutCfg   OutageConfig
}

// WriteTargets writes one table row per scenario target of proxyauth.
func WriteTargets(w io.Writer, t Targets) {
	row := func(target, measured string, met bool) {
		verdict := "met"
		if !met {
			verdict = "**missed**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", target, measured, verdict)
	}
	if r := t.Rollover; r != nil {
		row("0 requests waiting at a proactive refresh", fmt.Sprintf("%d waited (max auth delay %s)", r.Waited, ms(r.Max)), r.Waited == 0)
	}
	if s := t.Storm; s != nil {
		row("1 token request per 401 storm", fmt.Sprintf("%d token requests, %d of %d failed", s.TokenRequests, s.Failed, s.Requests),
			s.TokenRequests == 1)
	}
	if o := t.Outage; o != nil {
		row(fmt.Sprintf("≤ 5 token requests in the %v outage", t.OutCfg.Duration), fmt.Sprintf("%d", o.TokenRequests), o.TokenRequests <= 5)
		// The endpoint's Retry-After sets a floor under every wait.
		step := max(backoffStep(o.Refused), sandbox.DownRetryAfter)
		bound := step + t.OutCfg.TokenLatency
		measured := "no recovery"
		if o.Recovered {
			measured = fmt.Sprintf("%s; backoff step then %v (after %d failures, at least the endpoint's Retry-After of %v), + %v for the fetch",
				seconds(o.Recovery), step, o.Refused, sandbox.DownRetryAfter, t.OutCfg.TokenLatency)
		}
		row("recovery within one backoff step", measured, o.Recovered && o.Recovery <= bound)
	}
}

// backoffStep is the longest of proxyauth's backoff after n failed
// fetches in a row: 200 ms doubling to 30 s (each wait is jittered down to
// half of it).
func backoffStep(n int64) time.Duration {
	if n < 1 {
		return 0
	}
	return min(200*time.Millisecond<<min(n-1, 8), 30*time.Second)
}

// TargetsHeader starts the targets table.
const TargetsHeader = "| target | measured | |\n|---|---|---|\n"

// Title returns s as a Markdown heading of the given level.
func Title(level int, s string) string { return strings.Repeat("#", level) + " " + s + "\n\n" }
