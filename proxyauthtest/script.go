package proxyauthtest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/proxyauth/proxyauth/credential"
)

// ErrScriptEnded is returned, wrapped, by a [Script] called after its last
// step.
var ErrScriptEnded = errors.New("proxyauthtest: script ended")

// Step is one result of a [Script]: Err if it is not nil (the token is
// then the zero AccessToken, whatever Token holds), else Token.
type Step struct {
	Token credential.AccessToken
	Err   error
}

// Script is a [credential.TokenCredential] that returns its steps in order,
// one per call, whatever the scope. A call after the last step returns an
// error wrapping [ErrScriptEnded] that says how many calls were made; so
// does every later call. A call whose context has already ended returns
// the context's error and takes no step.
//
// A Script is safe for concurrent use: concurrent calls take distinct
// steps. The zero value is a script with no steps.
type Script struct {
	mu    sync.Mutex
	steps []Step
	next  int
	calls int
}

var _ credential.TokenCredential = (*Script)(nil)

// NewScript returns a Script of steps; it copies the slice.
func NewScript(steps ...Step) *Script {
	return &Script{steps: append([]Step(nil), steps...)}
}

// GetToken returns the next step's result.
func (s *Script) GetToken(ctx context.Context, scope string) (credential.AccessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if err := ctx.Err(); err != nil {
		return credential.AccessToken{}, err
	}
	if s.next == len(s.steps) {
		return credential.AccessToken{}, fmt.Errorf("%w: call %d of a script of %d steps", ErrScriptEnded, s.calls, len(s.steps))
	}
	st := s.steps[s.next]
	s.next++
	if st.Err != nil {
		return credential.AccessToken{}, st.Err
	}
	return st.Token, nil
}

// Calls returns how many times GetToken was called, including calls after
// the script ended and calls with an ended context.
func (s *Script) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}
