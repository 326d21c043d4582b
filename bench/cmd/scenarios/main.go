// Command scenarios runs the rollover, 401 storm, identity provider outage
// and fleet scenarios for proxyauth, x/oauth2 and azcore against the
// loopback sandbox, one peer after the other, and prints Markdown tables.
// The fleet scenario also draws a figure (SVG) if -fleet-svg names a file.
//
//	go run ./bench/cmd/scenarios [-only rollover,storm,outage,fleet] [-lifetime 1s] [-lifetimes 10] [-margin 300ms]
//	go run ./bench/cmd/scenarios -only fleet [-processes 200] [-fleet-svg fleet.svg] [-fleet-retry-after 1s]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/proxyauth/proxyauth/bench"
)

func main() {
	only := flag.String("only", "rollover,storm,outage,fleet", "scenarios to run, comma-separated")
	lifetime := flag.Duration("lifetime", bench.DefaultRollover.Lifetime, "rollover: token lifetime (whole seconds)")
	lifetimes := flag.Int("lifetimes", bench.DefaultRollover.Lifetimes, "rollover: lifetimes to run for")
	margin := flag.Duration("margin", bench.DefaultRollover.Margin, "rollover: early-refresh margin")
	level := flag.Int("level", 3, "heading level of each scenario")
	targets := flag.Bool("targets", true, "print proxyauth's scenario targets")
	title := flag.String("title", "", "rollover: heading, instead of the default")
	processes := flag.Int("processes", bench.DefaultFleet.Processes, "fleet: processes")
	svg := flag.String("fleet-svg", "", "fleet: write the figure to this file")
	svgLink := flag.String("fleet-svg-link", "", "fleet: the figure's path in the Markdown; empty: -fleet-svg")
	retryAfter := flag.Duration("fleet-retry-after", 0, "fleet: if positive, run proxyauth once more with this Retry-After on the outage's 503s")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("scenarios: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	run := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		run[strings.TrimSpace(s)] = true
	}
	peers := bench.Peers()
	var t bench.Targets
	w := os.Stdout

	if run["rollover"] {
		cfg := bench.DefaultRollover
		cfg.Lifetime, cfg.Lifetimes, cfg.Margin = *lifetime, *lifetimes, *margin
		rs, mine := each(ctx, "rollover", peers, cfg, bench.Rollover)
		t.Rollover = mine
		h := fmt.Sprintf("Rollover: %d workers, %d token lifetimes of %v", cfg.Workers, cfg.Lifetimes, cfg.Lifetime)
		if *title != "" {
			h = *title
		}
		fmt.Fprint(w, bench.Title(*level, h))
		bench.WriteRollover(w, cfg, peers, rs)
	}
	if run["storm"] {
		cfg := bench.DefaultStorm
		rs, mine := each(ctx, "storm", peers, cfg, bench.Storm)
		t.Storm = mine
		fmt.Fprint(w, bench.Title(*level, "401 storm: "+fmt.Sprint(cfg.Requests)+" concurrent requests with a revoked token"))
		bench.WriteStorm(w, cfg, peers, rs)
	}
	if run["outage"] {
		cfg := bench.DefaultOutage
		rs, mine := each(ctx, "outage", peers, cfg, bench.Outage)
		t.Outage = mine
		t.OutCfg = cfg
		fmt.Fprint(w, bench.Title(*level, fmt.Sprintf("Identity provider outage: %d requests/s for %v", cfg.Rate, cfg.Duration)))
		bench.WriteOutage(w, cfg, peers, rs)
	}
	if run["fleet"] {
		cfg := bench.DefaultFleet
		cfg.Processes = *processes
		rs, _ := each(ctx, "fleet", peers, cfg, bench.Fleet)
		if *retryAfter > 0 {
			ra := cfg
			ra.RetryAfter = *retryAfter
			r, _ := each(ctx, "fleet with Retry-After", []bench.Peer{bench.ProxyAuth}, ra, bench.Fleet)
			rs = append(rs, r...)
		}
		link := *svgLink
		if *svg != "" {
			f, err := os.Create(*svg)
			check(err)
			// The figure shows the three peers, each without Retry-After.
			check(bench.WriteFleetFigure(f, cfg, rs[:len(peers)]))
			check(f.Close())
			if link == "" {
				link = *svg
			}
		}
		fmt.Fprint(w, bench.Title(*level, fmt.Sprintf("Fleet: %d processes, %g s tokens, the token endpoint down for %g s",
			cfg.Processes, cfg.Lifetime.Seconds(), cfg.Outage.Seconds())))
		bench.WriteFleet(w, cfg, peers, rs, link)
		fmt.Fprint(w, bench.Title(*level+1, "Fleet criteria (proxyauth)"))
		bench.WriteFleetCriteria(w, cfg, rs)
		fmt.Fprintln(w)
	}
	if *targets {
		fmt.Fprint(w, bench.Title(*level, "Scenario targets (proxyauth)"))
		fmt.Fprint(w, bench.TargetsHeader)
		bench.WriteTargets(w, t)
		fmt.Fprintln(w)
	}
}

// each runs scenario for every peer in turn. It returns the results in the
// order of peers, and proxyauth's among them for the targets.
func each[C, R any](ctx context.Context, scenario string, peers []bench.Peer, cfg C,
	run func(context.Context, bench.Peer, C) (R, error)) (rs []R, proxyauth *R) {
	rs = make([]R, len(peers))
	for i, p := range peers {
		fmt.Fprintf(os.Stderr, "%s %s: %s\n", time.Now().Format("15:04:05"), scenario, p.Name)
		r, err := run(ctx, p, cfg)
		check(err)
		rs[i] = r
		if p.Name == bench.ProxyAuth.Name {
			proxyauth = &rs[i]
		}
	}
	return rs, proxyauth
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
