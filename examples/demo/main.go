// Command demo is what `make demo` runs: it measures proxyauth against the
// usual golang.org/x/oauth2 Transport under the same load, on loopback only.
//
// For each auth layer in turn it starts an in-process OAuth2 token endpoint
// that issues short-lived tokens slowly, and an in-process OpenAI-compatible
// proxy that accepts only those tokens while they are neither expired nor
// revoked. Many workers then call the proxy with the real openai-go client
// through the auth layer, across several token lifetimes, and halfway
// through every issued token is revoked. The report sets the two layers
// side by side; every figure in it is measured in the run.
//
// Usage:
//
//	go run ./demo [-duration 5s] [-workers 64] [-v]   (in the examples module)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// defaultConfig keeps the whole demo, both layers, well under 20 seconds.
func defaultConfig() Config {
	return Config{
		Workers:       64,
		Duration:      5 * time.Second,
		TokenLifetime: 2 * time.Second,
		TokenLatency:  100 * time.Millisecond,
		RefreshBefore: time.Second,
		ProxyLatency:  20 * time.Millisecond,
	}
}

// run is main with its inputs and outputs passed in. It returns the exit
// status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each auth layer is driven")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "concurrent openai-go callers")
	verbose := fs.Bool("v", false, "show each token event as it happens (never the token)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.RevokeAt = cfg.Duration / 2
	if *verbose {
		var mu sync.Mutex // events of one layer arrive on the token server's goroutines
		cfg.OnEvent = func(layer string, since time.Duration, e sandbox.Event) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stdout, "  %-9s %+8.3fs  %s\n", layer, since.Seconds(), describe(e))
		}
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	fmt.Fprintf(stdout, "openai-go, %d workers, %v per auth layer, against an in-process LLM proxy (%v per call).\n",
		cfg.Workers, cfg.Duration, cfg.ProxyLatency)
	fmt.Fprintf(stdout, "Tokens live %v, each token request takes %v, both layers refresh %v before expiry;\nall issued tokens are revoked %v into each run.\n\n",
		cfg.TokenLifetime, cfg.TokenLatency, cfg.RefreshBefore, cfg.RevokeAt)

	cfg.OnLayer = func(layer string) {
		fmt.Fprintf(stderr, "driving %d workers through %s for %v...\n", cfg.Workers, layer, cfg.Duration)
	}
	rep, err := runWorkload(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if *verbose {
		fmt.Fprintln(stdout)
	}
	printReport(stdout, rep)
	return 0
}

// describe says what a token event was, without any token.
func describe(e sandbox.Event) string {
	switch e.Kind {
	case "issued":
		return fmt.Sprintf("token issued, valid for %v", e.Expires.Sub(e.Time).Round(time.Millisecond))
	case "revoked":
		return "tokens revoked"
	case "refused":
		return fmt.Sprintf("token request refused with %d", e.Status)
	}
	return e.Kind
}

// printReport writes the layers side by side: labels to the left, one
// right-aligned column per layer.
func printReport(w io.Writer, rep Report) {
	type line struct {
		label string
		cells []string
	}
	var lines []line
	row := func(label string, cell func(LayerReport) string) {
		l := line{label: label}
		for _, lr := range rep.Layers {
			l.cells = append(l.cells, cell(lr))
		}
		lines = append(lines, l)
	}
	count := func(label string, f func(LayerReport) int64) {
		row(label, func(l LayerReport) string { return fmt.Sprint(f(l)) })
	}
	latency := func(label string, f func(LayerReport) time.Duration) {
		row(label, func(l LayerReport) string { return fmt.Sprintf("%.1fms", float64(f(l))/float64(time.Millisecond)) })
	}

	row("", func(l LayerReport) string { return l.Name })
	count("SDK calls", func(l LayerReport) int64 { return l.Calls })
	count("  failed", func(l LayerReport) int64 { return l.Failed })
	count("token requests", func(l LayerReport) int64 { return l.TokenRequests })
	count("calls that waited for a token", func(l LayerReport) int64 { return l.Waited })
	count("  at cold start", func(l LayerReport) int64 { return l.WaitedCold })
	count("  after revocation", func(l LayerReport) int64 { return l.WaitedRevoked })
	count("  at a proactive refresh", func(l LayerReport) int64 { return l.WaitedRefresh })
	count("  other", func(l LayerReport) int64 { return l.WaitedUnsorted })
	row("time they spent waiting, summed", func(l LayerReport) string { return fmt.Sprintf("%.1fs", l.WaitTime.Seconds()) })
	count("401s from the proxy", func(l LayerReport) int64 { return l.Rejected })
	count("401 resends by the auth layer", func(l LayerReport) int64 { return l.Resends })
	row("latency of successful calls", func(LayerReport) string { return "" })
	latency("  p50", func(l LayerReport) time.Duration { return l.P50 })
	latency("  p99", func(l LayerReport) time.Duration { return l.P99 })
	latency("  max", func(l LayerReport) time.Duration { return l.Max })

	labelWidth, cellWidth := 0, 0
	for _, l := range lines {
		labelWidth = max(labelWidth, len(l.label))
		for _, c := range l.cells {
			cellWidth = max(cellWidth, len(c))
		}
	}
	for _, l := range lines {
		var b strings.Builder
		fmt.Fprintf(&b, "%-*s", labelWidth, l.label)
		for _, c := range l.cells {
			fmt.Fprintf(&b, "  %*s", cellWidth, c)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}

	fmt.Fprintf(w, "\nA call waited for a token when it spent more than %v (half a token request) inside the auth layer.\n", rep.Config.TokenLatency/2)
	for _, l := range rep.Layers {
		fmt.Fprintf(w, "%-10s %s  (%.1f token lifetimes in %v)\n", l.Name+":", l.Setup,
			float64(l.Wall)/float64(rep.Config.TokenLifetime), l.Wall.Round(time.Millisecond))
	}
}
