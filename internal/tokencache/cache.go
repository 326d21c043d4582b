package tokencache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/bearer"
	"github.com/proxyauth/proxyauth/internal/redact"
)

// Defaults and limits of the refresh and backoff policy.
const (
	DefaultRefreshBefore = 5 * time.Minute
	DefaultFetchTimeout  = 30 * time.Second

	maxMargin = 30 * time.Second
	maxCalls  = 2 // credential calls at once: one that outlived FetchTimeout, and one more

	// The backoff after a failed fetch: steps of firstBackoff doubling up
	// to maxBackoff, each jittered down to as little as half of it.
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 30 * time.Second
	// A Retry-After of the identity provider makes the wait at least as
	// long, up to maxRetryAfter: a server's idea of minutes or hours must
	// not stop a process from trying for that long.
	maxRetryAfter = 5 * time.Minute
	// maxWait is the longest wait after a failure: a next try further away
	// can only come from a wall clock that stepped back.
	maxWait = max(maxBackoff, maxRetryAfter)

	// A refresh point moves earlier by up to a jitterShare-th of the
	// token's lifetime.
	jitterShare = 10
)

// Fetcher fetches a new token. ctx is detached from every caller of Get and
// carries the fetch timeout.
type Fetcher func(ctx context.Context) (credential.AccessToken, error)

// Options configure a Cache. The zero value of each field selects its default.
type Options struct {
	RefreshBefore time.Duration    // zero: DefaultRefreshBefore
	FetchTimeout  time.Duration    // zero: DefaultFetchTimeout
	Now           func() time.Time // nil: time.Now
	Logger        *slog.Logger     // nil: no logs. Messages are the transport's, and say so
	// Rand returns a number in [0, 1) each time a refresh point or a
	// backoff is jittered (nil: math/rand/v2's Float64). It must be safe
	// for concurrent use. Tests inject it so that every time is exact.
	Rand func() float64
}

// Entry is an immutable cached token. Entries are never modified after they
// are published, so readers need no lock; only an atomic mark of
// invalidation is set later.
type Entry struct {
	Token credential.AccessToken
	// Authorization is the header value "Bearer " + Token.Token, built
	// once per token so that the request path does not concatenate
	// strings.
	Authorization string
	// AuthorizationValues is []string{Authorization}, shared by every
	// request that carries this token, so that setting the header
	// allocates nothing. It must not be modified; a RoundTripper may not
	// modify request headers anyway.
	AuthorizationValues []string

	refreshAt   time.Time // the refresh point
	usableUntil time.Time
	never       bool   // ExpiresOn was zero: never refreshed, never unusable
	seq         uint64 // order of creation in its cache, from 1
	// dropped is set by Invalidate and never cleared. The flag is the one
	// part of an entry that changes; behind a pointer, so that the value
	// methods can copy an entry.
	dropped *atomic.Bool
}

// Seq numbers the entries of a cache in the order they were made, from 1,
// so that a caller can tell whether a token was fetched after an event.
func (e *Entry) Seq() uint64 { return e.seq }

// RefreshAt returns when the cache starts refreshing the token in the
// background. It is zero for a token that never expires.
func (e *Entry) RefreshAt() time.Time { return e.refreshAt }

// UsableUntil returns the last moment the cache hands the token out. It is
// zero for a token that never expires.
func (e *Entry) UsableUntil() time.Time { return e.usableUntil }

// String describes the entry without the token.
func (e Entry) String() string {
	return fmt.Sprintf("tokencache.Entry{Token:%v RefreshAt:%v UsableUntil:%v}", e.Token, e.refreshAt, e.usableUntil)
}

// Format keeps every fmt verb from printing Authorization, which holds the
// token.
func (e Entry) Format(f fmt.State, verb rune) { redact.Format(f, verb, e.String()) }

// Cache holds one token and keeps it fresh. It is safe for concurrent use.
//
// A caller of Get gets, by state of the cached token:
//   - fresh (before the refresh point): the token at once, without a lock
//     or an allocation;
//   - refreshing (from the refresh point until usable-until): the token at
//     once, while one background fetch runs, unless one runs already or one
//     failed less than a backoff ago;
//   - missing or unusable: the result of the one shared fetch, or its own
//     ctx's error if ctx ends first;
//   - missing after a recent failure: that failure at once, until the
//     backoff (200 ms doubling to 30 s, each step jittered, reset by a
//     success) has passed, or the Retry-After that the failure carried
//     (at most 5 minutes), whichever is longer.
//
// Refresh points and backoff steps are jittered so that processes which
// started together do not refresh, or retry after an outage, together.
type Cache struct {
	fetch         Fetcher
	refreshBefore time.Duration
	fetchTimeout  time.Duration
	now           func() time.Time
	rand          func() float64
	log           *slog.Logger

	cur       atomic.Pointer[Entry]
	sf        singleflight.Group
	bgRunning atomic.Bool  // a background refresh is in flight
	nextTry   atomic.Int64 // UnixNano before which no fetch starts; 0: no failure
	calls     atomic.Int32 // credential calls that have not returned

	mu       sync.Mutex // guards lastErr and failures
	lastErr  error      // the cause of the last failed fetch, nil after a success
	failures int        // consecutive failed fetches

	fetches     atomic.Int64
	fetchErrors atomic.Int64
	seq         atomic.Uint64 // entries made

	// hook, if not nil, is called at the named points where concurrent
	// calls interleave, so that a test can hold a call there. Set only by
	// tests, before the cache is used.
	hook func(point string)
}

// at calls the test hook, if any, at point.
func (c *Cache) at(point string) {
	if c.hook != nil {
		c.hook(point)
	}
}

// New returns a cache that fetches with fetch.
func New(fetch Fetcher, opts Options) *Cache {
	c := &Cache{
		fetch:         fetch,
		refreshBefore: opts.RefreshBefore,
		fetchTimeout:  opts.FetchTimeout,
		now:           opts.Now,
		rand:          opts.Rand,
		log:           opts.Logger,
	}
	if c.refreshBefore <= 0 {
		c.refreshBefore = DefaultRefreshBefore
	}
	if c.fetchTimeout <= 0 {
		c.fetchTimeout = DefaultFetchTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	return c
}

// Get returns a usable token entry. The returned entry must not be modified.
func (c *Cache) Get(ctx context.Context) (*Entry, error) {
	e := c.cur.Load()
	if e != nil && e.never {
		return e, nil
	}
	now := c.now()
	if e != nil && now.Before(e.refreshAt) {
		return e, nil
	}
	return c.refreshOrWait(ctx, e, now)
}

// refreshOrWait is Get for a token that is not fresh: one still usable is
// returned at once, with a background refresh started; without one, the
// caller waits for the shared fetch.
func (c *Cache) refreshOrWait(ctx context.Context, e *Entry, now time.Time) (*Entry, error) {
	if e != nil && now.Before(e.usableUntil) {
		c.refreshInBackground(now)
		return e, nil
	}
	if ctx.Err() != nil {
		// A caller that has given up starts no fetch, and learns that
		// its own context ended, whatever the backoff says.
		return nil, waitErr(ctx)
	}
	if err := c.backoffErr(now); err != nil {
		return nil, err
	}
	for retried := false; ; retried = true {
		ch := c.sf.DoChan("", c.doFetch)
		c.at("joined")
		select {
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
			e := r.Val.(*Entry)
			if e.dropped.Load() && !retried {
				// The fetch found e fresh and shared it, but e was
				// invalidated before this caller got it: it may be
				// the very token this caller's request was refused
				// with. One more fetch cannot return e: it is no
				// longer cached, and doFetch would not reuse it.
				continue
			}
			return e, nil
		case <-ctx.Done():
			return nil, waitErr(ctx)
		}
	}
}

// waitErr is the error of a caller whose own context ended: the context's
// error, and its cause too when one was given, so that errors.Is finds
// context.Canceled or context.DeadlineExceeded either way. It is no
// FetchError: nothing failed but the caller's wait.
func waitErr(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("waiting for a token: %w: %w", err, cause)
	}
	return fmt.Errorf("waiting for a token: %w", err)
}

func (c *Cache) refreshInBackground(now time.Time) {
	// The load first: every request in the refresh window gets here, and
	// a failed CompareAndSwap would still take the cache line for writing.
	if c.inBackoff(now) || c.bgRunning.Load() || !c.bgRunning.CompareAndSwap(false, true) {
		return
	}
	if c.log != nil {
		c.log.Debug("transport: refreshing the token in the background", "event", "refresh_started")
	}
	ch := c.sf.DoChan("", c.doFetch)
	go func() {
		// The channel is buffered, so the flag is cleared when the fetch
		// ends, whoever started it.
		<-ch
		c.bgRunning.Store(false)
	}()
}

// inBackoff reports whether the backoff after a failed fetch still runs.
// The wall clock may step back (NTP): a next try further away than the
// longest wait the cache sets (a Retry-After of 5 minutes) is taken as
// passed, so that such a step cannot stop all fetches for as long as the
// step.
func (c *Cache) inBackoff(now time.Time) bool {
	next := c.nextTry.Load()
	if next == 0 {
		return false
	}
	wait := next - now.UnixNano()
	return wait > 0 && wait <= int64(maxWait)
}

// backoffErr returns the error that a caller without a usable token gets
// while the backoff after a failed fetch runs, or nil when a fetch may start.
func (c *Cache) backoffErr(now time.Time) error {
	if !c.inBackoff(now) {
		return nil
	}
	// nextTry is written under mu with the rest: read together, they
	// describe one failure.
	c.mu.Lock()
	next, cause, failures := c.nextTry.Load(), c.lastErr, c.failures
	c.mu.Unlock()
	if cause == nil {
		return nil
	}
	return &FetchError{Err: cause, Failures: failures, NextTry: time.Unix(0, next), now: now}
}

// doFetch runs inside the singleflight group: at most one runs at a time.
func (c *Cache) doFetch() (any, error) {
	now := c.now()
	// A caller that saw no fresh token may get here just after another
	// fetch stored one, or while the backoff runs: no credential call then.
	if e := c.cur.Load(); e != nil && (e.never || now.Before(e.refreshAt)) {
		c.at("loaded")
		if !e.dropped.Load() {
			c.at("reusing")
			return e, nil
		}
		// Invalidated since it was read: fetch anew.
	}
	if err := c.backoffErr(now); err != nil {
		return nil, err
	}
	if c.calls.Load() >= maxCalls {
		// Calls that outlived FetchTimeout are still running: another
		// would only pile up goroutines behind them.
		return nil, c.fail(ErrCredentialStuck, now, false)
	}

	c.fetches.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), c.fetchTimeout)
	type result struct {
		tok credential.AccessToken
		err error
	}
	done := make(chan result, 1)
	c.calls.Add(1)
	go func() {
		defer c.calls.Add(-1)
		// A panicking credential would take the whole process down from
		// this goroutine; every waiter gets an error instead.
		defer func() {
			if v := recover(); v != nil {
				done <- result{err: fmt.Errorf("%w: %v", ErrCredentialPanic, v)}
			}
		}()
		tok, err := c.fetch(ctx)
		done <- result{tok, err}
	}()

	select {
	case r := <-done:
		cancel()
		return c.settle(r.tok, r.err)
	case <-ctx.Done():
		// The credential ignores its context. Callers are released now; a
		// token that still arrives is cached if it outlives the current one.
		go func() {
			r := <-done
			cancel()
			if r.err == nil {
				c.storeLate(r.tok)
			}
		}()
		return c.settle(credential.AccessToken{}, fmt.Errorf("credential did not answer within the fetch timeout of %v: %w", c.fetchTimeout, context.DeadlineExceeded))
	}
}

// settle records the outcome of one credential call.
func (c *Cache) settle(tok credential.AccessToken, err error) (*Entry, error) {
	now := c.now()
	var e *Entry
	if err == nil {
		e, err = c.entryFor(tok, now)
	}
	if err != nil {
		return nil, c.fail(err, now, true)
	}
	c.store(e)
	if c.log != nil {
		c.log.Debug("transport: token fetched", "event", "token_fetched", "expires_on", tok.ExpiresOn, "refresh_at", e.refreshAt)
	}
	return e, nil
}

func (c *Cache) store(e *Entry) {
	c.clearFailures()
	c.cur.Store(e)
}

func (c *Cache) clearFailures() {
	c.mu.Lock()
	c.lastErr, c.failures = nil, 0
	c.nextTry.Store(0)
	c.mu.Unlock()
}

// storeLate caches a token that arrived after its fetch timed out, unless
// the cache holds one that lasts as long.
func (c *Cache) storeLate(tok credential.AccessToken) {
	e, err := c.entryFor(tok, c.now())
	if err != nil {
		return
	}
	cur := c.cur.Load()
	if cur != nil && (cur.never || !cur.usableUntil.Before(e.usableUntil)) {
		return
	}
	if c.cur.CompareAndSwap(cur, e) {
		c.clearFailures()
		if c.log != nil {
			c.log.Debug("transport: token fetched after its fetch timed out", "event", "token_fetched", "late", true,
				"expires_on", tok.ExpiresOn, "refresh_at", e.refreshAt)
		}
	}
}

// fail records a failed fetch and starts or extends the backoff. called is
// false when the credential was not called at all.
func (c *Cache) fail(cause error, now time.Time, called bool) error {
	if called {
		c.fetchErrors.Add(1)
	}
	asked := retryAfter(cause)
	c.mu.Lock()
	c.failures++
	// The failures-th step of 200 ms, 400 ms, 800 ms ... 30 s, shortened
	// by a random part of up to half, so that processes that failed
	// together do not try again together.
	step := min(firstBackoff<<min(c.failures-1, 8), maxBackoff)
	wait := step - part(step/2, c.rand())
	wait = max(wait, min(asked, maxRetryAfter))
	next := now.Add(wait)
	// A failed background refresh must not keep callers from a fetch once
	// the old token is no longer usable: with short-lived tokens the
	// backoff, or what the server asked for, can outlast the refresh
	// window, and a token request that the server may refuse is better
	// than none while requests fail for want of a token.
	if cur := c.cur.Load(); cur != nil && !cur.never && now.Before(cur.usableUntil) && next.After(cur.usableUntil) {
		next = cur.usableUntil
	}
	c.lastErr = cause
	c.nextTry.Store(next.UnixNano())
	failures := c.failures
	c.mu.Unlock()
	if c.log != nil {
		attrs := []any{"event", "fetch_failed", "error", cause.Error(), "failures", failures, "retry_in", next.Sub(now)}
		if asked > 0 {
			attrs = append(attrs, "retry_after", asked)
		}
		c.log.Warn("transport: token fetch failed", attrs...)
	}
	return &FetchError{Err: cause, Failures: failures, NextTry: next, now: now}
}

// retryAfter returns the wait that the identity provider asked for in err
// (a credential.RetryAfterError anywhere in its chain), or 0.
func retryAfter(err error) time.Duration {
	var ra credential.RetryAfterError
	if errors.As(err, &ra) {
		return max(ra.RetryAfterDelay(), 0)
	}
	return 0
}

// part returns the share u of d: 0 for u <= 0, d for u >= 1, and never
// more than d, so that a source that strays from [0, 1) cannot move a time
// past its bounds.
func part(d time.Duration, u float64) time.Duration {
	switch {
	case !(u > 0): // NaN too
		return 0
	case u >= 1:
		return d
	}
	return min(time.Duration(u*float64(d)), d)
}

// entryFor checks a fetched token and works out its refresh point and
// usable-until time.
func (c *Cache) entryFor(tok credential.AccessToken, now time.Time) (*Entry, error) {
	if tok.Token == "" {
		return nil, ErrEmptyToken
	}
	if !bearer.Valid(tok.Token) {
		return nil, errUnsafeToken
	}
	// Expiry is a wall-clock fact. A time with a monotonic clock reading
	// (time.Now) would be compared by the monotonic clock, which stops
	// while a machine sleeps: an expired token would look fresh after a
	// suspend. So every time in the entry is wall-clock only.
	now = now.Round(0)
	h := "Bearer " + tok.Token
	e := &Entry{Token: tok, Authorization: h, AuthorizationValues: []string{h}, seq: c.seq.Add(1), dropped: new(atomic.Bool)}
	if tok.ExpiresOn.IsZero() {
		e.never = true
		return e, nil
	}
	exp, refreshOn := tok.ExpiresOn.Round(0), tok.RefreshOn.Round(0)
	if !now.Before(exp) {
		return nil, &ExpiredTokenError{ExpiresOn: exp, Now: now}
	}
	e.refreshAt, e.usableUntil = Schedule(now, exp, refreshOn, c.refreshBefore, c.rand())
	return e, nil
}

// Schedule returns the refresh point and the usable-until time of a token
// fetched at f that expires at exp (after f), jittered by u in [0, 1).
//
// Usable-until is exp minus a margin of 30 s, but never more than a tenth of
// the lifetime, so that short-lived tokens stay usable for most of it.
//
// The refresh point follows a rule, then moves earlier by the jitter:
//   - refreshOn is taken as it is when it lies after f and before
//     usable-until: the issuer knows best. A refreshOn outside that range
//     would make every request start a fetch, or make callers wait for one,
//     so the default rule applies instead: exp-refreshBefore, but never
//     before the half-life, and never after usable-until (a refreshBefore
//     shorter than the margin would leave no time to refresh in the
//     background).
//   - The point then moves earlier, never later, by u times a tenth of the
//     lifetime: tokens fetched together by many processes are refreshed at
//     different moments, not in step. The move is at most half the time
//     from f to the point, so that a refreshOn close to f stays after it;
//     a point from the default rule, at least half a lifetime after f, can
//     always move by the whole tenth.
//
// u = 0 gives the rule's point; u close to 1 the earliest.
func Schedule(f, exp, refreshOn time.Time, refreshBefore time.Duration, u float64) (refreshAt, usableUntil time.Time) {
	life := exp.Sub(f)
	usableUntil = exp.Add(-min(maxMargin, life/10))
	if refreshOn.After(f) && refreshOn.Before(usableUntil) {
		refreshAt = refreshOn
	} else {
		refreshAt = exp.Add(-refreshBefore)
		if half := f.Add(life / 2); refreshAt.Before(half) {
			refreshAt = half
		}
		if refreshAt.After(usableUntil) {
			refreshAt = usableUntil
		}
	}
	jitter := min(part(life/jitterShare, u), refreshAt.Sub(f)/2)
	return refreshAt.Add(-jitter), usableUntil
}

// Invalidate drops the cached token if it is still token. A request that was
// refused with an older token must not throw away a newer one.
//
// The entry is marked before it is dropped, so that a fetch which found it
// fresh just before, and callers who join that fetch, do not hand it out
// again: a Get that starts after Invalidate returns never returns it.
func (c *Cache) Invalidate(token string) {
	e := c.cur.Load()
	if e != nil && e.Token.Token == token {
		e.dropped.Store(true)
		c.cur.CompareAndSwap(e, nil)
	}
}

// Stats returns how many times the credential was called and how many of
// those calls failed.
func (c *Cache) Stats() (fetches, fetchErrors int64) {
	return c.fetches.Load(), c.fetchErrors.Load()
}

// The causes of failed fetches that are not the credential's own errors.
// None of them holds a token.
var (
	// ErrCredentialPanic is wrapped around the value of a credential's
	// panic.
	ErrCredentialPanic = errors.New("credential panicked")
	// ErrCredentialStuck is the cause while two calls that outlived the
	// fetch timeout have not returned: no third starts until one does.
	ErrCredentialStuck = errors.New("earlier credential calls have not returned since they timed out")
	// ErrInvalidToken matches every token that cannot be sent: an empty
	// one (ErrEmptyToken) and one with characters that cannot go into a
	// header. Those have messages of their own.
	ErrInvalidToken = errors.New("credential returned a token that cannot go into an Authorization header")
	// ErrEmptyToken is an empty token. It matches ErrInvalidToken.
	ErrEmptyToken error = invalidTokenError("credential returned an empty token")

	errUnsafeToken error = invalidTokenError("credential returned a token with characters that cannot go into an HTTP header")
)

// invalidTokenError says why a token cannot be sent, and matches
// ErrInvalidToken.
type invalidTokenError string

func (e invalidTokenError) Error() string        { return string(e) }
func (e invalidTokenError) Is(target error) bool { return target == ErrInvalidToken }

// ExpiredTokenError is returned when a credential hands out a token that
// has already expired, typically because of clock skew or a stale cache.
type ExpiredTokenError struct {
	ExpiresOn time.Time // the token's expiry
	Now       time.Time // when the cache received it
}

func (e *ExpiredTokenError) Error() string {
	return fmt.Sprintf("credential returned a token that expired at %s, %v before it was received",
		e.ExpiresOn.UTC().Format(time.RFC3339), e.Now.Sub(e.ExpiresOn).Round(time.Millisecond))
}

// FetchError is a failed token fetch, or the error of a caller that found
// no usable token while the backoff after one runs: the cause, and when
// the cache tries again. Err is reachable with errors.Is and errors.As.
type FetchError struct {
	Err      error     // the cause
	Failures int       // consecutive failed fetches
	NextTry  time.Time // no fetch starts before this
	now      time.Time // when the error was handed out; zero in one made elsewhere
}

func (e *FetchError) Error() string {
	if e.now.IsZero() {
		return fmt.Sprintf("token fetch failed (%d in a row; next try at %s): %v",
			e.Failures, e.NextTry.UTC().Format("15:04:05.000Z"), e.Err)
	}
	wait := e.NextTry.Sub(e.now).Round(time.Millisecond)
	return fmt.Sprintf("token fetch failed (%d in a row; next try in %v, at %s): %v",
		e.Failures, wait, e.NextTry.UTC().Format("15:04:05.000Z"), e.Err)
}

// Unwrap returns the cause.
func (e *FetchError) Unwrap() error { return e.Err }
