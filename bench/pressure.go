package bench

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuPressure measures the share of wall time in which some task on the
// machine was ready to run but waited for a CPU (Linux PSI,
// /proc/pressure/cpu), to judge delays that a scenario counts against a
// threshold: on a machine shared with other work, a thread that holds a
// request can be off its CPU for tens of milliseconds.
type cpuPressure struct {
	start time.Time
	stall time.Duration
	ok    bool
}

func startCPUPressure() cpuPressure {
	stall, ok := readCPUStall()
	return cpuPressure{start: time.Now(), stall: stall, ok: ok}
}

// share returns the share of the time since start, from 0 to 1, or -1 when
// the kernel does not report CPU pressure.
func (p cpuPressure) share() float64 {
	stall, ok := readCPUStall()
	wall := time.Since(p.start)
	if !p.ok || !ok || wall <= 0 {
		return -1
	}
	return min(float64(stall-p.stall)/float64(wall), 1)
}

// readCPUStall returns the "some" total of /proc/pressure/cpu.
func readCPUStall() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				us, err := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond, err == nil
			}
		}
	}
	return 0, false
}
