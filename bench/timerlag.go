package bench

import (
	"time"
)

// timerLag measures how late 10 ms sleeps wake up while it runs: how busy
// the machine was, to judge delays that a scenario counts against a
// threshold.
type timerLag struct {
	stop chan struct{}
	done chan []time.Duration
}

func startTimerLag() *timerLag {
	t := &timerLag{stop: make(chan struct{}), done: make(chan []time.Duration, 1)}
	go func() {
		const period = 10 * time.Millisecond
		var lags []time.Duration
		tm := time.NewTimer(period)
		defer tm.Stop()
		for start := time.Now(); ; start = time.Now() {
			select {
			case <-t.stop:
				t.done <- lags
				return
			case now := <-tm.C:
				lags = append(lags, now.Sub(start)-period)
				tm.Reset(period)
			}
		}
	}()
	return t
}

// end stops the probe and returns the 99th percentile and the largest lag.
func (t *timerLag) end() (p99, maxLag time.Duration) {
	close(t.stop)
	_, p99, maxLag = percentiles(<-t.done)
	return p99, maxLag
}
