package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/testcred"
)

// tokenCall is one of the three ways to ask a Transport for a token. It
// returns the error, nil when a token (or a response) came back.
type tokenCall struct {
	name string
	call func(tr *Transport, ctx context.Context) error
}

var tokenCalls = []tokenCall{
	{"RoundTrip", func(tr *Transport, ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://llm.example.com/v1/models", nil)
		resp, err := tr.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
		}
		return err
	}},
	{"Token", func(tr *Transport, ctx context.Context) error {
		_, err := tr.Token(ctx)
		return err
	}},
	{"AuthHeaders", func(tr *Transport, ctx context.Context) error {
		_, err := tr.AuthHeaders(ctx)
		return err
	}},
}

// failureKind is one way a token fetch fails.
type failureKind struct {
	name string
	// cred counts each of its calls in calls, then fails.
	cred         func(t *testing.T, calls *atomic.Int64, clk *testutil.Clock) credential.TokenCredential
	fetchTimeout time.Duration // zero: the default
	// setup, if not nil, brings the transport to the failure.
	setup func(t *testing.T, tr *Transport, clk *testutil.Clock)
	// cause reports whether errors.Is or errors.As reach the cause in err.
	cause func(err error) bool
	// secret is what the credential returned that no message may show.
	secret string
	// stuck: a try calls no credential.
	stuck bool
	// async: the fetch timeout can return the error before the cache's
	// goroutine has entered the credential, so the test waits for the
	// calls it expects instead of reading the count at once.
	async bool
	// setupCalls is how many credential calls setup makes.
	setupCalls int64
}

var errProvider = errors.New("the identity provider is down")

func failureKinds() []failureKind {
	returns := func(tok credential.AccessToken, err error) func(*testing.T, *atomic.Int64, *testutil.Clock) credential.TokenCredential {
		return func(_ *testing.T, calls *atomic.Int64, _ *testutil.Clock) credential.TokenCredential {
			return credential.Func(func(context.Context, string) (credential.AccessToken, error) {
				calls.Add(1)
				return tok, err
			})
		}
	}
	// ignoresContext holds every call until the test ends, whatever its
	// context says: calls that outlive the fetch timeout.
	ignoresContext := func(t *testing.T, calls *atomic.Int64, _ *testutil.Clock) credential.TokenCredential {
		src, _ := testcred.Gated(t)
		return credential.Func(func(context.Context, string) (credential.AccessToken, error) {
			calls.Add(1)
			return src.GetToken(context.Background(), "")
		})
	}
	timedOut := func(t *testing.T, tr *Transport, clk *testutil.Clock) {
		t.Helper()
		for range 2 {
			_, err := tr.Token(context.Background())
			var fe *FetchError
			if !errors.As(err, &fe) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("setup: err = %v; want a FetchError for the fetch timeout", err)
			}
			clk.Set(fe.NextTry)
		}
	}
	return []failureKind{
		{
			name: "OAuth2 error",
			cred: returns(credential.AccessToken{}, fmt.Errorf("credential: token request: %w", &credential.OAuth2Error{StatusCode: 401, Code: "invalid_client"})),
			cause: func(err error) bool {
				var oe *credential.OAuth2Error
				return errors.As(err, &oe) && oe.Code == "invalid_client"
			},
		},
		{
			name:  "wrapped sentinel",
			cred:  returns(credential.AccessToken{}, fmt.Errorf("my credential: %w", errProvider)),
			cause: func(err error) bool { return errors.Is(err, errProvider) },
		},
		{
			name: "panic",
			cred: func(_ *testing.T, calls *atomic.Int64, _ *testutil.Clock) credential.TokenCredential {
				return credential.Func(func(context.Context, string) (credential.AccessToken, error) {
					calls.Add(1)
					panic("credential blew up")
				})
			},
			cause: func(err error) bool {
				return errors.Is(err, ErrCredentialPanic) && strings.Contains(err.Error(), "credential blew up")
			},
		},
		{
			name:  "empty token",
			cred:  returns(credential.AccessToken{ExpiresOn: time.Now().Add(time.Hour)}, nil),
			cause: func(err error) bool { return errors.Is(err, ErrInvalidToken) },
		},
		{
			name:   "token that cannot go in a header",
			cred:   returns(credential.AccessToken{Token: "sekrit\r\nX-Injected: 1"}, nil),
			cause:  func(err error) bool { return errors.Is(err, ErrInvalidToken) },
			secret: "sekrit",
		},
		{
			name: "expired token",
			cred: func(_ *testing.T, calls *atomic.Int64, clk *testutil.Clock) credential.TokenCredential {
				return credential.Func(func(context.Context, string) (credential.AccessToken, error) {
					calls.Add(1)
					return credential.AccessToken{Token: "sekrit-old", ExpiresOn: clk.Now().Add(-time.Minute)}, nil
				})
			},
			cause: func(err error) bool {
				var ee *ExpiredTokenError
				return errors.As(err, &ee) && ee.Now.Sub(ee.ExpiresOn) == time.Minute
			},
			secret: "sekrit-old",
		},
		{
			name: "fetch timeout",
			// A credential that honours its context: it returns when the
			// fetch timeout ends it, however slow the machine.
			cred: func(_ *testing.T, calls *atomic.Int64, _ *testutil.Clock) credential.TokenCredential {
				return credential.Func(func(ctx context.Context, _ string) (credential.AccessToken, error) {
					calls.Add(1)
					<-ctx.Done()
					return credential.AccessToken{}, ctx.Err()
				})
			},
			fetchTimeout: time.Millisecond,
			cause:        func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
			async:        true,
		},
		{
			name:         "credential stuck",
			cred:         ignoresContext,
			fetchTimeout: time.Millisecond,
			setup:        timedOut,
			cause:        func(err error) bool { return errors.Is(err, ErrCredentialStuck) },
			stuck:        true,
			async:        true,
			setupCalls:   2,
		},
	}
}

// Every way a fetch can fail reaches the caller of RoundTrip, Token and
// AuthHeaders as a *FetchError that wraps the cause, with nothing sent.
// Its NextTry is when the next try really is on the fake clock: a call a
// nanosecond before it gets the same error without a try, a call at it
// makes one.
func TestNoTokenErrorIsFetchError(t *testing.T) {
	for _, k := range failureKinds() {
		for _, m := range tokenCalls {
			t.Run(k.name+"/"+m.name, func(t *testing.T) {
				clk := testutil.NewClock()
				var calls atomic.Int64
				mt := httpmock.NewMockTransport()
				tr := newTransport(k.cred(t, &calls, clk), "s", &Options{Base: mt, FetchTimeout: k.fetchTimeout}, clk.Now, noJitter)
				if k.setup != nil {
					k.setup(t, tr, clk)
				}
				ctx := context.Background()
				start := clk.Now()

				err := m.call(tr, ctx)
				var fe *FetchError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v; want a *FetchError", err)
				}
				if !k.cause(err) || !k.cause(fe) {
					t.Fatalf("err = %v; want the cause reachable through it and through the FetchError", err)
				}
				if !strings.HasPrefix(err.Error(), "transport: ") {
					t.Errorf("err = %q; want the prefix \"transport: \"", err)
				}
				if k.secret != "" && strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, fe), k.secret) {
					t.Errorf("err shows the token: %v", err)
				}
				if !fe.NextTry.After(start) || fe.NextTry.After(start.Add(30*time.Second)) {
					t.Fatalf("NextTry = now+%v; want within the backoff of at most 30s", fe.NextTry.Sub(start))
				}
				if n := mt.GetTotalCallCount(); n != 0 {
					t.Fatalf("%d requests sent; want none without a token", n)
				}

				// callsAre checks the credential calls so far: at once, or,
				// for a credential the fetch timeout can outrun, once they
				// have arrived.
				callsAre := func(want int64, when string) {
					t.Helper()
					if k.async {
						testutil.Eventually(t, fmt.Sprintf("%d credential calls %s", want, when), func() bool { return calls.Load() >= want })
					}
					if n := calls.Load(); n != want {
						t.Fatalf("%s: %d credential calls; want %d", when, n, want)
					}
				}
				before := k.setupCalls
				if !k.stuck {
					before++
				}
				callsAre(before, "after the first try")
				failures := fe.Failures
				clk.Set(fe.NextTry.Add(-time.Nanosecond))
				err = m.call(tr, ctx)
				var again *FetchError
				if !errors.As(err, &again) || !k.cause(err) || !again.NextTry.Equal(fe.NextTry) || again.Failures != failures {
					t.Fatalf("1ns before NextTry: err = %v; want the same FetchError", err)
				}
				callsAre(before, "1ns before NextTry")

				clk.Set(fe.NextTry)
				err = m.call(tr, ctx)
				var next *FetchError
				if !errors.As(err, &next) || !k.cause(err) || next.Failures != failures+1 || !next.NextTry.After(fe.NextTry) {
					t.Fatalf("at NextTry: err = %v; want the FetchError of a new try, failure %d", err, failures+1)
				}
				want := before + 1
				if k.stuck {
					want = before
				}
				callsAre(want, "at NextTry")
				if n := mt.GetTotalCallCount(); n != 0 {
					t.Fatalf("%d requests sent; want none without a token", n)
				}
			})
		}
	}
}

// A caller whose own context ended gets its context's error, and its
// cause, not a FetchError: while it waits for a fetch, when it comes with
// a context that has already ended, and while the backoff after a failed
// fetch runs.
func TestCallerContextErrorIsNotFetchError(t *testing.T) {
	errMine := errors.New("the caller gave up")
	type ending struct {
		name string
		ctx  func() (context.Context, func()) // the context, and what ends it
		want []error
	}
	endings := []ending{
		{"cancel", func() (context.Context, func()) { return context.WithCancel(context.Background()) }, []error{context.Canceled}},
		{"cancel with a cause", func() (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(context.Background())
			return ctx, func() { cancel(errMine) }
		}, []error{context.Canceled, errMine}},
		{"deadline", func() (context.Context, func()) {
			// A deadline that the test brings about by hand, so that it
			// passes exactly when the test says.
			dc := newDeadlineCtx()
			return dc, dc.expire
		}, []error{context.DeadlineExceeded}},
	}
	for _, m := range tokenCalls {
		for _, end := range endings {
			check := func(t *testing.T, err error) {
				t.Helper()
				for _, want := range end.want {
					if !errors.Is(err, want) {
						t.Errorf("err = %v; want it to match %v", err, want)
					}
				}
				var fe *FetchError
				if errors.As(err, &fe) {
					t.Errorf("err = %v; want the context's error, not a FetchError", err)
				}
			}
			t.Run(m.name+"/"+end.name+"/while waiting", func(t *testing.T) {
				src, open := testcred.Gated(t)
				mt := httpmock.NewMockTransport()
				mt.RegisterNoResponder(httpmock.NewStringResponder(http.StatusOK, "ok"))
				tr := New(src, "s", &Options{Base: mt})
				ctx, endIt := end.ctx()
				done := make(chan error, 1)
				go func() { done <- m.call(tr, ctx) }()
				testutil.Eventually(t, "the shared fetch to start", func() bool { return src.Calls() == 1 })
				endIt()
				check(t, testutil.Recv(t, done, "the call to return once its context ended"))
				// The shared fetch goes on: the next caller gets its token.
				open()
				if err := m.call(tr, context.Background()); err != nil || src.Calls() != 1 {
					t.Fatalf("after the fetch: %v, %d credential calls; want a token from the one call", err, src.Calls())
				}
			})
			t.Run(m.name+"/"+end.name+"/during the backoff", func(t *testing.T) {
				var calls atomic.Int64
				clk := testutil.NewClock()
				cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
					calls.Add(1)
					return credential.AccessToken{}, errProvider
				})
				tr := newTransport(cred, "s", &Options{Base: httpmock.NewMockTransport()}, clk.Now, noJitter)
				if err := m.call(tr, context.Background()); !errors.Is(err, errProvider) {
					t.Fatalf("first call: %v; want the credential's error", err)
				}
				ctx, endIt := end.ctx()
				endIt()
				err := m.call(tr, ctx)
				check(t, err)
				if errors.Is(err, errProvider) || calls.Load() != 1 {
					t.Fatalf("err = %v after %d credential calls; want only the context's error, 1 call", err, calls.Load())
				}
			})
		}
	}
}
