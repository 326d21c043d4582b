// Command overhead measures what going through `proxyauth serve` costs
// against calling the gateway directly, and prints a Markdown table. It
// builds the command from the repository first, unless -bin names one.
//
//	go run ./cmd/overhead [-bin path] [-workers 16] [-duration 5s] [-level 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/proxyauth/proxyauth/bench"
)

func main() {
	cfg := bench.DefaultOverhead
	bin := flag.String("bin", "", "the proxyauth binary; empty: build cmd/proxyauth")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "requests in flight at once")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "of each measured run")
	flag.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "of the run before each measured one")
	level := flag.Int("level", 3, "heading level")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("overhead: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg.Binary = *bin
	if cfg.Binary == "" {
		dir, err := os.MkdirTemp("", "proxyauth-overhead")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if cfg.Binary, err = bench.BuildCommand(ctx, dir); err != nil {
			log.Fatal(err)
		}
	}
	rs, err := bench.Overhead(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(bench.Title(*level, fmt.Sprintf("Overhead of `proxyauth serve`: %d requests in flight", cfg.Workers)))
	bench.WriteOverhead(os.Stdout, cfg, rs)
}
