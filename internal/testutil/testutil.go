// Package testutil supports the tests of proxyauth: a fake clock, bounded
// waits that fail with a message instead of hanging, goroutines run at once,
// a shared output buffer, a slog handler that records what was logged, a
// barrier, and a fake base transport.
package testutil

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HangTimeout bounds every wait of a test on work that other goroutines do.
// It only detects a hang: it is generous enough for a loaded 2-core machine
// under -race, and no test measures speed with it.
const HangTimeout = 30 * time.Second

// Clock is a manually advanced clock. Its zero value is not usable; use
// NewClock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to a fixed instant.
func NewClock() *Clock {
	return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Eventually waits until cond holds, failing the test if it does not within
// HangTimeout. It is for waiting on work that other goroutines finish (a
// background refresh), never for measuring how fast they are. It must be
// called from the test's goroutine.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(HangTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", HangTimeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Recv receives from ch, failing the test with what did not happen if
// nothing arrives within HangTimeout. It must be called from the test's
// goroutine.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(HangTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", HangTimeout, what)
		panic("unreachable")
	}
}

// Wait waits for wg, failing the test if it does not finish within
// HangTimeout.
func Wait(t testing.TB, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	Recv(t, done, what)
}

// Concurrently runs f in n goroutines at once, with each one's index, and
// waits for all of them, failing the test if they have not all returned
// within HangTimeout. The errors f returns are reported here, on the test's
// goroutine, where a test may fail.
func Concurrently(t testing.TB, n int, what string, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	Wait(t, &wg, what+" to return")
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s %d of %d: %v", what, i, n, err)
		}
	}
}

// Buffer is a bytes.Buffer that a running program writes to while a test
// reads it: its logs or its output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Record is one log record: its level, message and attributes, with
// values resolved. Groups are flattened into dotted keys.
type Record struct {
	Level   slog.Level
	Message string
	Attrs   map[string]slog.Value
}

// Event returns the record's "event" attribute: the stable name of what
// happened, which tests match instead of the message text.
func (r Record) Event() string { return r.Attrs["event"].String() }

// Logs is a [slog.Handler] that keeps every record at every level. Tests
// assert on attributes (above all "event"), never on message text. It is
// safe for concurrent use.
type Logs struct {
	mu      sync.Mutex
	records []Record
	prefix  []slog.Attr // from WithAttrs, shared by derived handlers
	root    *Logs
}

// NewLogs returns an empty recording handler and a logger writing to it.
func NewLogs() (*Logs, *slog.Logger) {
	l := &Logs{}
	l.root = l
	return l, slog.New(l)
}

func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *Logs) Handle(_ context.Context, r slog.Record) error {
	rec := Record{Level: r.Level, Message: r.Message, Attrs: map[string]slog.Value{}}
	for _, a := range l.prefix {
		addAttr(rec.Attrs, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(rec.Attrs, "", a)
		return true
	})
	l.root.mu.Lock()
	l.root.records = append(l.root.records, rec)
	l.root.mu.Unlock()
	return nil
}

func addAttr(m map[string]slog.Value, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix + a.Key + "."
		if a.Key == "" {
			p = prefix
		}
		for _, g := range v.Group() {
			addAttr(m, p, g)
		}
		return
	}
	m[prefix+a.Key] = v
}

func (l *Logs) WithAttrs(as []slog.Attr) slog.Handler {
	return &Logs{prefix: append(append([]slog.Attr(nil), l.prefix...), as...), root: l.root}
}

// WithGroup is not used by proxyauth; records keep their keys ungrouped.
func (l *Logs) WithGroup(string) slog.Handler { return l }

// Records returns a copy of every record so far.
func (l *Logs) Records() []Record {
	l.root.mu.Lock()
	defer l.root.mu.Unlock()
	return append([]Record(nil), l.root.records...)
}

// Events returns the records whose "event" attribute is event.
func (l *Logs) Events(event string) []Record {
	var out []Record
	for _, r := range l.Records() {
		if r.Event() == event {
			out = append(out, r)
		}
	}
	return out
}

// RoundTripFunc is an [http.RoundTripper] made of a function: the fake base
// transport of a test.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(r).
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Response returns an answer to req with status and body, and an empty
// header map, as a base transport would.
func Response(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode:    status,
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		Header:        http.Header{},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
