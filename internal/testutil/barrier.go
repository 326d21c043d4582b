package testutil

import (
	"context"
	"sync/atomic"
	"testing"
)

// Barrier holds goroutines until a given number of them have arrived. A
// fake server that holds each request at a barrier proves that the requests
// really ran at the same time: no caller got its answer before the last one
// had sent. Its zero value is not usable; use NewBarrier.
type Barrier struct {
	n       int64
	arrived atomic.Int64
	all     chan struct{}
	ctx     context.Context
}

// NewBarrier returns a barrier for n goroutines. It gives up HangTimeout
// after NewBarrier, so that a barrier that is never reached (the code under
// test serialised what it should have run at once) fails the test instead
// of hanging it.
func NewBarrier(t testing.TB, n int) *Barrier {
	ctx, cancel := context.WithTimeout(context.Background(), HangTimeout)
	t.Cleanup(cancel)
	return &Barrier{n: int64(n), all: make(chan struct{}), ctx: ctx}
}

// Arrive counts the caller and waits until n callers have arrived. It
// reports false if they did not within HangTimeout of NewBarrier; then every
// later Arrive returns false at once. Arrivals after the n-th pass straight
// through. It is safe to call from any goroutine; the test reports a
// failure with Check.
func (b *Barrier) Arrive() bool {
	if b.arrived.Add(1) == b.n {
		close(b.all)
	}
	select {
	case <-b.all:
		return true
	case <-b.ctx.Done():
		return false
	}
}

// Arrived returns how many callers have arrived.
func (b *Barrier) Arrived() int { return int(b.arrived.Load()) }

// Check fails the test, naming what, if fewer than n callers arrived. It
// must be called from the test's goroutine, after the callers are done.
func (b *Barrier) Check(t testing.TB, what string) {
	t.Helper()
	if got := b.arrived.Load(); got < b.n {
		t.Errorf("only %d of %d %s were in flight at once within %v; want all of them", got, b.n, what, HangTimeout)
	}
}
