package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/testcred"
)

// Tests of rule 5: what a 401 does to the cached token, the one resend, and
// the refusal hold.

const chatURL = "https://llm.example.com/v1/chat/completions"

// refusedBody is what the fake servers answer with a 401, so that a test
// can tell that the 401 reached the caller as it was.
const refusedBody = `{"error":{"code":"invalid_token","message":"revoked"}}`

// byToken matches requests that carry tok, and names the match after it,
// so that httpmock counts the sends of each token under its name.
func byToken(tok string) httpmock.Matcher {
	return httpmock.HeaderIs("Authorization", "Bearer "+tok).WithName(tok)
}

// sendsOf returns how many requests to url carrying tok reached mt.
func sendsOf(mt *httpmock.MockTransport, method, url, tok string) int {
	return mt.GetCallCountInfo()[method+" "+url+" <"+tok+">"]
}

// unreplayable returns a POST whose body has no GetBody: the transport
// cannot resend it.
func unreplayable(url, body string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, url, io.NopCloser(strings.NewReader(body)))
	return req
}

// send sends req through rt and returns the status and the body, which it
// closes. It may run on any goroutine: it reports instead of failing.
func send(rt http.RoundTripper, req *http.Request) (int, string, error) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustSend is send for the test's own goroutine.
func mustSend(t *testing.T, rt http.RoundTripper, req *http.Request) (int, string) {
	t.Helper()
	status, body, err := send(rt, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return status, body
}

// holdOf describes a refusal hold without its token.
func holdOf(r *refusal) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("%v until %v", r.hold, r.until)
}

func answer(status int, r *http.Request) *http.Response {
	return testutil.Response(r, status, http.StatusText(status))
}

// concurrently sends n requests made by mk through rt, each from its own
// goroutine, and returns the statuses (0 for an error) and errors, failing
// t if they do not all end within HangTimeout.
func concurrently(t *testing.T, n int, rt http.RoundTripper, mk func() *http.Request) ([]int, []error) {
	t.Helper()
	statuses, errs := make([]int, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i], _, errs[i] = send(rt, mk()) })
	}
	testutil.Wait(t, &wg, fmt.Sprintf("%d concurrent requests to end", n))
	return statuses, errs
}

// 6. A 401 is healed by exactly one resend with the identical body and a new
// token; a second 401 goes back to the caller.
//
// The base is written by hand: the test counts how much of the 401 body
// the transport reads before it closes it, and what request bodies arrive.
func TestRetryOn401(t *testing.T) {
	payload := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	bodies := []struct {
		name string
		make func() (*http.Request, error)
	}{
		{"bytes.Reader", func() (*http.Request, error) {
			return http.NewRequest(http.MethodPost, chatURL, bytes.NewReader([]byte(payload)))
		}},
		{"strings.Reader", func() (*http.Request, error) {
			return http.NewRequest(http.MethodPost, chatURL, strings.NewReader(payload))
		}},
		{"explicit GetBody", func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPost, chatURL, nil)
			if err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(strings.NewReader(payload))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(payload)), nil }
			return req, nil
		}},
		{"no body", func() (*http.Request, error) {
			return http.NewRequest(http.MethodGet, "https://llm.example.com/v1/models", nil)
		}},
		{"http.NoBody", func() (*http.Request, error) {
			return http.NewRequest(http.MethodPost, "https://llm.example.com/v1/models", http.NoBody)
		}},
	}
	for _, b := range bodies {
		t.Run(b.name, func(t *testing.T) {
			up := &upstream{}
			up.rejectToken("tok-1")
			cred := &testcred.Source{}
			var refused *recordingBody // the first 401's body
			base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := up.RoundTrip(r)
				if resp.StatusCode == http.StatusUnauthorized && refused == nil {
					refused = &recordingBody{Reader: strings.NewReader(strings.Repeat("x", 1<<20))}
					resp.Body = refused
				}
				return resp, err
			})
			tr := New(cred, "s", &Options{Base: base})
			req, err := b.make()
			if err != nil {
				t.Fatal(err)
			}
			if status, _ := mustSend(t, tr, req); status != http.StatusOK {
				t.Fatalf("status = %d; want 200", status)
			}
			s := up.sends()
			if len(s) != 2 || s[0].auth != "Bearer tok-1" || s[1].auth != "Bearer tok-2" {
				t.Fatalf("sends = %d, want 2: the first with tok-1, the resend with tok-2", len(s))
			}
			wantBody := payload
			if req.Body == nil || req.Body == http.NoBody {
				wantBody = ""
			}
			if s[0].body != wantBody || s[1].body != wantBody {
				t.Fatalf("bodies = %q, %q; want %q twice", s[0].body, s[1].body, wantBody)
			}
			if refused.closed.Load() != 1 || refused.read.Load() == 0 || refused.read.Load() > maxDrain {
				t.Fatalf("401 body: closed %d times, drained %d bytes; want closed once after at most %d bytes", refused.closed.Load(), refused.read.Load(), maxDrain)
			}
			if st := tr.Stats(); st.Retries != 1 || st.Fetches != 2 {
				t.Fatalf("Stats = %+v; want 1 retry, 2 fetches", st)
			}

			// Every token rejected: one resend, then the 401 as it is.
			up.rejectToken("tok-2")
			up.rejectToken("tok-3")
			req, _ = b.make()
			if status, _ := mustSend(t, tr, req); status != http.StatusUnauthorized {
				t.Fatalf("second 401: status %d; want the 401 with err == nil", status)
			}
			if n := len(up.sends()); n != 4 {
				t.Fatalf("upstream got %d requests; want 4 (never a loop)", n)
			}
		})
	}
}

// 7. A body that cannot be replayed is never resent; DisableRetry turns
// resending off. Either way the 401 reaches the caller as it was.
func TestNoRetry(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		req  func() *http.Request
	}{
		{"body without GetBody", Options{}, func() *http.Request { return unreplayable(chatURL, "once") }},
		{"DisableRetry", Options{DisableRetry: true}, func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, chatURL, strings.NewReader("twice"))
			return req
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mt := httpmock.NewMockTransport()
			mt.RegisterResponder(http.MethodPost, chatURL, httpmock.NewStringResponder(http.StatusUnauthorized, refusedBody))
			cred := &testcred.Source{}
			tt.opts.Base = mt
			tr := New(cred, "s", &tt.opts)
			status, body := mustSend(t, tr, tt.req())
			if status != http.StatusUnauthorized || body != refusedBody {
				t.Fatalf("got %d %q; want the 401 as it was", status, body)
			}
			if n := mt.GetTotalCallCount(); n != 1 {
				t.Fatalf("upstream got %d requests; want 1", n)
			}
			if st := tr.Stats(); st.Retries != 0 || st.Fetches != 1 {
				t.Fatalf("Stats = %+v; want no retry, one fetch", st)
			}
		})
	}
}

// Rule 5: a 401 drops the refused token even when the request cannot be
// resent, so that a revoked token fails one request, not every request
// until its refresh point. The next request, unreplayable too, gets a new
// token with exactly one credential call.
func TestRevokedTokenUnreplayableBody(t *testing.T) {
	mt := httpmock.NewMockTransport()
	// tok-1 is accepted once, then revoked.
	mt.RegisterMatcherResponder(http.MethodPost, chatURL, byToken("tok-1"),
		httpmock.NewStringResponder(http.StatusOK, "ok").Then(httpmock.NewStringResponder(http.StatusUnauthorized, refusedBody)))
	mt.RegisterMatcherResponder(http.MethodPost, chatURL, byToken("tok-2"), httpmock.NewStringResponder(http.StatusOK, "ok"))
	cred := &testcred.Source{}
	tr := New(cred, "s", &Options{Base: mt})

	if status, _ := mustSend(t, tr, unreplayable(chatURL, "1")); status != http.StatusOK {
		t.Fatalf("first request: status %d; want 200", status)
	}
	status, body := mustSend(t, tr, unreplayable(chatURL, "2"))
	if status != http.StatusUnauthorized || body != refusedBody {
		t.Fatalf("request after the revocation: %d %q; want the 401 as it was", status, body)
	}
	if n := cred.Calls(); n != 1 {
		t.Fatalf("credential calls after the 401 = %d; want 1 (nothing to resend, so no fetch yet)", n)
	}
	if status, _ := mustSend(t, tr, unreplayable(chatURL, "3")); status != http.StatusOK {
		t.Fatalf("next request: status %d; want 200 with a new token", status)
	}
	if n := cred.Calls(); n != 2 {
		t.Fatalf("credential calls = %d; want 2: exactly one new token", n)
	}
	if s1, s2, all := sendsOf(mt, http.MethodPost, chatURL, "tok-1"), sendsOf(mt, http.MethodPost, chatURL, "tok-2"), mt.GetTotalCallCount(); s1 != 2 || s2 != 1 || all != 3 {
		t.Fatalf("sends: tok-1 %d, tok-2 %d, all %d; want 2, 1, 3", s1, s2, all)
	}
	if st := tr.Stats(); st.Retries != 0 {
		t.Fatalf("Retries = %d; want 0", st.Retries)
	}
}

// late401 sets up a 401 that arrives late: slow, a request to /slow, goes
// out with tok-1, the server revokes tok-1, another request heals itself
// with tok-2, which the server accepts, then beforeLate (if not nil) runs
// and only then does slow get its 401, which must reach the caller. It
// returns the transport, the credential and the server, which answers 401
// to the tokens it was told to reject.
func late401(t *testing.T, slow *http.Request, beforeLate func(*upstream)) (*Transport, *testcred.Source, *upstream) {
	t.Helper()
	up := &upstream{}
	slowArrived, releaseSlow := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(releaseSlow) })
	t.Cleanup(release)
	var slowSeen atomic.Bool
	base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/slow" && slowSeen.CompareAndSwap(false, true) { // not its resend
			close(slowArrived)
			select {
			case <-releaseSlow:
			case <-time.After(testutil.HangTimeout):
			}
		}
		return up.RoundTrip(r)
	})
	cred := &testcred.Source{}
	tr := New(cred, "s", &Options{Base: base})
	if status, _ := mustSend(t, tr, httpGet("https://llm.example.com/")); status != http.StatusOK {
		t.Fatalf("first request: status %d", status)
	}
	up.rejectToken("tok-1")

	type result struct {
		status int
		err    error
	}
	slowDone := make(chan result, 1)
	go func() {
		status, _, err := send(tr, slow)
		slowDone <- result{status, err}
	}()
	testutil.Recv(t, slowArrived, "the slow request to reach the server")
	if status, _ := mustSend(t, tr, httpGet("https://llm.example.com/")); status != http.StatusOK {
		t.Fatalf("request after the revocation: status %d; want 200 after a resend", status)
	}
	if beforeLate != nil {
		beforeLate(up)
	}
	release()
	if r := testutil.Recv(t, slowDone, "the slow request's 401"); r.err != nil || r.status != http.StatusUnauthorized {
		t.Fatalf("slow request: %d, %v; want its 401", r.status, r.err)
	}
	if n := cred.Calls(); n != 2 {
		t.Fatalf("credential calls = %d; want 2", n)
	}
	return tr, cred, up
}

const slowURL = "https://llm.example.com/slow"

func httpGet(url string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return req
}

// A 401 for an old token that arrives after a newer token was fetched must
// drop neither the newer token (the cache's Invalidate compares) nor make
// the newer one, already accepted, look like a new token refused: when
// the server later revokes it, the next request is healed by one resend,
// not held.
func TestLate401ForOldToken(t *testing.T) {
	t.Run("keeps the newer token", func(t *testing.T) {
		tr, cred, up := late401(t, unreplayable(slowURL, "slow"), nil)
		if status, _ := mustSend(t, tr, httpGet("https://llm.example.com/")); status != http.StatusOK {
			t.Fatalf("status %d; want 200", status)
		}
		s := up.sends()
		if last := s[len(s)-1].auth; last != "Bearer tok-2" || cred.Calls() != 2 {
			t.Fatalf("next request carried %q after %d credential calls; want tok-2 after 2", last, cred.Calls())
		}
	})
	t.Run("the newer token is not taken for new", func(t *testing.T) {
		tr, cred, up := late401(t, unreplayable(slowURL, "slow"), nil)
		up.rejectToken("tok-2")
		if status, _ := mustSend(t, tr, httpGet("https://llm.example.com/")); status != http.StatusOK {
			t.Fatalf("request after tok-2 was revoked: status %d; want 200 after one resend", status)
		}
		// The first request, the healed one (401, resend), the slow one,
		// and the last one (401, resend).
		want := "[tok-1 tok-1 tok-2 tok-1 tok-2 tok-3]"
		if got := up.tokens(); got != want || cred.Calls() != 3 {
			t.Fatalf("tokens sent %s after %d credential calls; want %s after 3", got, cred.Calls(), want)
		}
		if r := tr.refused.Load(); r != nil {
			t.Fatalf("a refusal hold began (%v); want none", holdOf(r))
		}
	})
	t.Run("a resend refused with the newer token drops it", func(t *testing.T) {
		// The slow request can be resent, with tok-2, which the server
		// revoked just before the slow 401 came back.
		tr, cred, up := late401(t, httpGet(slowURL), func(up *upstream) { up.rejectToken("tok-2") })
		if status, _ := mustSend(t, tr, httpGet("https://llm.example.com/")); status != http.StatusOK {
			t.Fatalf("next request: status %d; want 200 with a new token", status)
		}
		want := "[tok-1 tok-1 tok-2 tok-1 tok-2 tok-3]"
		if got := up.tokens(); got != want || cred.Calls() != 3 {
			t.Fatalf("tokens sent %s after %d credential calls; want %s after 3", got, cred.Calls(), want)
		}
		if r := tr.refused.Load(); r != nil {
			t.Fatalf("a refusal hold began (%v); want none", holdOf(r))
		}
	})
}

// 8. Many requests refused at once with the same token cost one credential
// call, and each is resent once. The base holds every first send until all
// have arrived, so the 401s really arrive together.
func TestConcurrent401(t *testing.T) {
	const n = 500
	first := testutil.NewBarrier(t, n)
	var sends, stuck atomic.Int64
	base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		sends.Add(1)
		if r.Header.Get("Authorization") == "Bearer tok-1" { // revoked
			if !first.Arrive() {
				stuck.Add(1)
			}
			return answer(http.StatusUnauthorized, r), nil
		}
		return answer(http.StatusOK, r), nil
	})
	cred := &testcred.Source{}
	tr := New(cred, "s", &Options{Base: base})
	if _, err := tr.Token(context.Background()); err != nil { // tok-1 cached
		t.Fatal(err)
	}
	statuses, errs := concurrently(t, n, tr, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, chatURL, strings.NewReader("{}"))
		return req
	})
	if k := stuck.Load(); k != 0 {
		t.Fatalf("%d first sends gave up waiting for the others at the barrier", k)
	}
	for i := range n {
		if errs[i] != nil || statuses[i] != http.StatusOK {
			t.Fatalf("request %d: %d, %v; want 200", i, statuses[i], errs[i])
		}
	}
	if c, s, r := cred.Calls(), sends.Load(), tr.Stats().Retries; c != 2 || s != 2*n || r != n {
		t.Fatalf("credential calls %d, sends %d, resends %d; want 2, %d, %d", c, s, r, 2*n, n)
	}
}

// A server that refuses every token, new ones included, costs one extra
// fetch per hold, not one per request; the hold doubles up to maxHold and
// ends with a resend that is not refused.
func TestServerRefusingEveryToken(t *testing.T) {
	clk := testutil.NewClock()
	src := &testcred.Source{Now: clk.Now}
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, chatURL, httpmock.NewStringResponder(http.StatusUnauthorized, refusedBody))
	tr := newTransport(src, "s", &Options{Base: mt}, clk.Now, noJitter)
	do := func() int {
		t.Helper()
		status, _ := mustSend(t, tr, httpGet(chatURL))
		return status
	}
	for range 100 {
		if status := do(); status != http.StatusUnauthorized {
			t.Fatalf("status = %d; want the 401", status)
		}
	}
	if c, s, r := src.Calls(), mt.GetTotalCallCount(), tr.Stats().Retries; c != 2 || s != 101 || r != 1 {
		t.Fatalf("credential calls %d, sends %d, resends %d; want 2, 101, 1", c, s, r)
	}
	for i, hold := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		hold *= time.Second
		clk.Advance(hold - time.Nanosecond)
		do()
		if c := src.Calls(); c != int64(i+2) {
			t.Fatalf("step %d: credential calls within a hold of %v = %d; want %d", i, hold, c, i+2)
		}
		clk.Advance(time.Nanosecond)
		do()
		if c := src.Calls(); c != int64(i+3) {
			t.Fatalf("step %d: credential calls after a hold of %v = %d; want %d", i, hold, c, i+3)
		}
	}
	clk.Advance(maxHold)
	mt.RegisterResponder(http.MethodGet, chatURL, httpmock.NewStringResponder(http.StatusOK, "ok"))
	if status := do(); status != http.StatusOK {
		t.Fatalf("status = %d; want 200", status)
	}
	if tr.refused.Load() != nil {
		t.Fatal("a successful request did not end the hold")
	}
}

// The same server, with requests that can never be resent: each 401 drops
// the token it refused, but a token fetched after a refusal and refused
// too starts the hold, so that the requests cost one credential call per
// hold, not one per request.
func TestServerRefusingEveryTokenUnreplayable(t *testing.T) {
	clk := testutil.NewClock()
	src := &testcred.Source{Now: clk.Now}
	logs, logger := testutil.NewLogs()
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodPost, chatURL, httpmock.NewStringResponder(http.StatusUnauthorized, refusedBody))
	tr := newTransport(src, "s", &Options{Base: mt, Logger: logger}, clk.Now, noJitter)
	post := func() {
		t.Helper()
		if status, body := mustSend(t, tr, unreplayable(chatURL, "{}")); status != http.StatusUnauthorized || body != refusedBody {
			t.Fatalf("got %d %q; want the 401 as it was", status, body)
		}
	}
	// tok-1 is refused and dropped; the next request fetches tok-2, which
	// is refused although new: the hold begins.
	for range 100 {
		post()
	}
	if c, s := src.Calls(), mt.GetTotalCallCount(); c != 2 || s != 100 {
		t.Fatalf("credential calls %d, sends %d; want 2, 100", c, s)
	}
	holds := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i, hold := range holds[:len(holds)-1] {
		hold *= time.Second
		if r := tr.refused.Load(); r == nil || r.hold != hold {
			t.Fatalf("step %d: hold %v; want %v", i, holdOf(r), hold)
		}
		clk.Advance(hold - time.Nanosecond)
		post()
		if c := src.Calls(); c != int64(i+2) {
			t.Fatalf("step %d: credential calls within a hold of %v = %d; want %d", i, hold, c, i+2)
		}
		clk.Advance(time.Nanosecond)
		post() // drops the held token; nothing to resend, so no fetch
		post() // fetches the next token, refused too: the next hold
		if c := src.Calls(); c != int64(i+3) {
			t.Fatalf("step %d: credential calls after a hold of %v = %d; want %d: one per hold", i, hold, c, i+3)
		}
	}
	if n, want := len(logs.Events("refusal_hold")), len(holds); n != want {
		t.Fatalf("%d refusal_hold events; want %d, one per hold", n, want)
	}
	if st := tr.Stats(); st.Retries != 0 {
		t.Fatalf("Retries = %d; want 0", st.Retries)
	}
}

// Many requests refused at once with the same new token start one hold of
// firstHold, not a doubling each. The base holds every first send, and
// then every resend, until all have arrived, so that the refusals of the
// new token really are concurrent.
func TestConcurrentRefusalsStartOneHold(t *testing.T) {
	const n = 50
	clk := testutil.NewClock()
	src := &testcred.Source{Now: clk.Now}
	var sends, stuck atomic.Int64
	first, resend := testutil.NewBarrier(t, n), testutil.NewBarrier(t, n)
	base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		sends.Add(1)
		b := resend
		if r.Header.Get("Authorization") == "Bearer tok-1" {
			b = first
		}
		if !b.Arrive() {
			stuck.Add(1)
		}
		return answer(http.StatusUnauthorized, r), nil
	})
	logs, logger := testutil.NewLogs()
	tr := newTransport(src, "s", &Options{Base: base, Logger: logger}, clk.Now, noJitter)
	if _, err := tr.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	statuses, errs := concurrently(t, n, tr, func() *http.Request { return httpGet(chatURL) })
	if k := stuck.Load(); k != 0 {
		t.Fatalf("%d sends gave up waiting for the others at a barrier", k)
	}
	for i := range n {
		if errs[i] != nil || statuses[i] != http.StatusUnauthorized {
			t.Fatalf("request %d: %d, %v; want the 401", i, statuses[i], errs[i])
		}
	}
	if c, s, r := src.Calls(), sends.Load(), tr.Stats().Retries; c != 2 || s != 2*n || r != n {
		t.Fatalf("credential calls %d, sends %d, resends %d; want 2, %d, %d", c, s, r, 2*n, n)
	}
	r := tr.refused.Load()
	if r == nil || r.authorization != "Bearer tok-2" || r.hold != firstHold || !r.until.Equal(clk.Now().Add(firstHold)) {
		t.Fatalf("hold %v; want one hold of %v, for tok-2, from now", holdOf(r), firstHold)
	}
	if k := len(logs.Events("refusal_hold")); k != 1 {
		t.Fatalf("%d refusal_hold events; want 1", k)
	}
}

// storeMax, which keeps the refused and accepted marks, leaves the largest
// value whatever the order of concurrent calls. The calls start together
// at a barrier, smallest first and largest first alike.
func TestStoreMax(t *testing.T) {
	const n = 100
	var v atomic.Uint64
	storeMax(&v, 7)
	storeMax(&v, 3)
	if got := v.Load(); got != 7 {
		t.Fatalf("after 7 then 3: %d; want 7", got)
	}
	v.Store(0)
	b := testutil.NewBarrier(t, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b.Arrive()
			storeMax(&v, uint64(i+1))
		})
	}
	testutil.Wait(t, &wg, "the concurrent calls of storeMax")
	b.Check(t, "calls of storeMax")
	if got := v.Load(); got != n {
		t.Fatalf("after concurrent calls with 1..%d: %d; want %d", n, got, n)
	}
}

// A send that fails comes back as an error alone, even from a base that
// returns a response with its error: RoundTrip never returns both, and the
// stray response's body is closed, the first send's as the resend's.
func TestSendErrorComesAlone(t *testing.T) {
	for _, failing := range []int64{1, 2} {
		t.Run(fmt.Sprintf("send %d", failing), func(t *testing.T) {
			netErr := fmt.Errorf("connection reset by peer")
			stray := &recordingBody{Reader: strings.NewReader("half an answer")}
			var sends atomic.Int64
			base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				if sends.Add(1) < failing {
					return testutil.Response(r, http.StatusUnauthorized, refusedBody), nil
				}
				resp := testutil.Response(r, http.StatusBadGateway, "")
				resp.Body = stray
				return resp, netErr
			})
			tr := New(&testcred.Source{}, "s", &Options{Base: base})
			resp, err := tr.RoundTrip(httpGet("https://llm.example.com/"))
			if resp != nil || err != netErr || sends.Load() != failing {
				t.Fatalf("got %v, %v after %d sends; want no response and the error of send %d", resp, err, sends.Load(), failing)
			}
			if n := stray.closed.Load(); n != 1 {
				t.Errorf("the response that came with the error was closed %d times; want once", n)
			}
		})
	}
}
