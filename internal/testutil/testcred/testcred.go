// Package testcred supports the tests of proxyauth: a credential that hands
// out numbered tokens. It is apart from testutil because it imports
// credential, whose own tests use testutil.
package testcred

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
)

// Source is a credential that hands out "tok-1", "tok-2", ... in the order
// of its calls, each valid for Life from Now. Its zero value hands out
// tokens valid for an hour of real time. It is safe for concurrent use.
type Source struct {
	Now  func() time.Time // the clock of ExpiresOn; nil: time.Now
	Life time.Duration    // zero: an hour
	// Gate, if not nil, holds each call until it is closed or the call's
	// context ends.
	Gate <-chan struct{}

	calls atomic.Int64
}

// GetToken implements [credential.TokenCredential]. The call's number is
// taken when it starts, so that a test can see a call that waits at Gate.
func (s *Source) GetToken(ctx context.Context, _ string) (credential.AccessToken, error) {
	n := s.calls.Add(1)
	if s.Gate != nil {
		select {
		case <-s.Gate:
		case <-ctx.Done():
			return credential.AccessToken{}, ctx.Err()
		}
	}
	now, life := time.Now, time.Hour
	if s.Now != nil {
		now = s.Now
	}
	if s.Life != 0 {
		life = s.Life
	}
	return credential.AccessToken{Token: Token(n), ExpiresOn: now().Add(life)}, nil
}

// Fetch is GetToken without a scope, the shape of the token cache's fetcher.
func (s *Source) Fetch(ctx context.Context) (credential.AccessToken, error) {
	return s.GetToken(ctx, "")
}

// Calls returns how many calls have started.
func (s *Source) Calls() int64 { return s.calls.Load() }

// Token returns the token of the n-th call: "tok-n".
func Token(n int64) string { return "tok-" + strconv.FormatInt(n, 10) }

// Gated returns a Source whose calls wait until open is called. open is
// also called when t ends, so that a failed test leaves no call waiting.
func Gated(t testing.TB) (s *Source, open func()) {
	gate := make(chan struct{})
	open = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open)
	return &Source{Gate: gate}, open
}
