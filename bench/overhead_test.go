package bench

import (
	"strings"
	"testing"
	"time"
)

// TestOverhead runs the overhead measurement at a tiny size: the command
// builds, serves every kind of request whole, and the table is written. No
// timings are asserted: the machine may be busy.
func TestOverhead(t *testing.T) {
	bin, err := BuildCommand(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := OverheadConfig{Binary: bin, Workers: 2, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond}
	rs, err := Overhead(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(overheadKinds) {
		t.Fatalf("%d results; want %d", len(rs), len(overheadKinds))
	}
	for _, r := range rs {
		for _, run := range []OverheadRun{r.Direct, r.Through} {
			if run.Requests == 0 || run.Failed != 0 || run.PerSec <= 0 || run.P50 <= 0 || run.P50 > run.P99 {
				t.Errorf("%s: inconsistent run %+v", r.Kind, run)
			}
		}
	}
	var b strings.Builder
	WriteOverhead(&b, cfg, rs)
	if n := strings.Count(b.String(), "**serve / direct**"); n != len(rs) {
		t.Errorf("the table has %d ratio rows; want %d:\n%s", n, len(rs), b.String())
	}
}
