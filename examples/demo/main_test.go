package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWorkload runs the demo's workload briefly and checks what the demo
// claims, as counts. The workload runs in real time; each check holds
// however slow the machine is, except that waits are told by their
// length (see the proxyauth subtest).
func TestWorkload(t *testing.T) {
	cfg := Config{
		Workers:       8,
		Duration:      5 * time.Second,
		TokenLifetime: 4 * time.Second,
		// Long enough that a call delayed by a busy machine (the race
		// detector, other test packages) is not taken for one that
		// waited for a token, and a refresh window (from 2 s to 3.6 s
		// of a token's life) that leaves it ample time.
		TokenLatency:  600 * time.Millisecond,
		RefreshBefore: 2 * time.Second,
		ProxyLatency:  10 * time.Millisecond,
		// Before the first token's refresh point (about 2.6 s), so that
		// the waits it causes cannot be mistaken for waits at a refresh.
		RevokeAt: 1500 * time.Millisecond,
	}
	rep, err := runWorkload(t.Context(), cfg)
	if err != nil {
		t.Fatalf("runWorkload: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var b bytes.Buffer
			printReport(&b, rep)
			t.Logf("the run measured:\n%s", b.String())
		}
	})
	byName := map[string]LayerReport{}
	for _, l := range rep.Layers {
		byName[l.Name] = l
		t.Run(l.Name+"/common", func(t *testing.T) {
			if l.Calls == 0 {
				t.Fatal("no SDK calls were made")
			}
			if sum := l.WaitedCold + l.WaitedRevoked + l.WaitedRefresh + l.WaitedUnsorted; sum != l.Waited {
				t.Errorf("waits by cause add up to %d; want %d", sum, l.Waited)
			}
			if l.WaitTime <= 0 {
				t.Errorf("WaitTime = %v for %d waits; want more than 0", l.WaitTime, l.Waited)
			}
			// Nothing can be sent before the first token arrives, and
			// it takes TokenLatency to arrive.
			if l.WaitedCold < 1 {
				t.Errorf("WaitedCold = %d; want at least 1", l.WaitedCold)
			}
		})
	}

	t.Run("proxyauth", func(t *testing.T) {
		l, ok := byName["proxyauth"]
		if !ok {
			t.Fatal("no proxyauth layer in the report")
		}
		if l.Failed != 0 {
			t.Errorf("Failed = %d; want 0", l.Failed)
		}
		// One token per lifetime, the cold start, the revocation, and one
		// refresh that a revocation can bring forward.
		lifetimes := int64(cfg.Duration / cfg.TokenLifetime)
		if limit := lifetimes + 3; l.TokenRequests > limit {
			t.Errorf("TokenRequests = %d; want at most %d", l.TokenRequests, limit)
		}
		if l.TokenRequests*4 > l.Calls {
			t.Errorf("TokenRequests = %d for %d calls; want far fewer", l.TokenRequests, l.Calls)
		}
		// A refresh that callers waited for would hold up every worker
		// that called during the token request (all of them: a call
		// takes a fraction of the request's latency). A wait is told by
		// its length, so a call that a loaded machine stalls in the auth
		// layer is taken for one; a few such stalls must not fail the
		// test, a refresh in the foreground must.
		if l.WaitedRefresh >= int64(cfg.Workers) {
			t.Errorf("WaitedRefresh = %d; want fewer than one per worker (%d): refreshes run in the background", l.WaitedRefresh, cfg.Workers)
		}
		// The revocation is healed by resends, one per 401, invisible
		// to the SDK caller.
		if l.Resends < 1 || l.Resends != l.Rejected {
			t.Errorf("Resends = %d, Rejected = %d; want equal and at least 1", l.Resends, l.Rejected)
		}
	})

	t.Run("x/oauth2", func(t *testing.T) {
		l, ok := byName["x/oauth2"]
		if !ok {
			t.Fatal("no x/oauth2 layer in the report")
		}
		if l.Resends != 0 {
			t.Errorf("Resends = %d; want 0: oauth2.Transport never resends", l.Resends)
		}
		// Its first token reaches its refresh point inside the run, and
		// the call that finds it there fetches the next one itself.
		if l.WaitedRefresh < 1 {
			t.Errorf("WaitedRefresh = %d; want at least 1", l.WaitedRefresh)
		}
	})
}

func TestRun(t *testing.T) {
	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{{"-nope"}, {"-workers", "0"}, {"-duration", "0s"}} {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
				t.Errorf("run(%q) = %d; want 2", args, code)
			}
			if stderr.Len() == 0 {
				t.Errorf("run(%q) explained nothing on stderr", args)
			}
		}
	})

	t.Run("report", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"-duration", "1s", "-workers", "2", "-v"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit status %d; want 0; stderr: %s", code, stderr.String())
		}
		out := stdout.String()
		for _, want := range []string{
			"proxyauth", "x/oauth2", "token issued, valid for 2s", "tokens revoked",
			"SDK calls", "failed", "token requests", "calls that waited for a token",
			"at cold start", "after revocation", "at a proactive refresh", "time they spent waiting",
			"401 resends by the auth layer", "latency of successful calls", "  p50", "  p99", "  max",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the report lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "at_") {
			t.Errorf("the report shows a token:\n%s", out)
		}
	})
}
