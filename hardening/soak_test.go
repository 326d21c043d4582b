package hardening_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/transport"
)

var soakRequests = flag.Int("soak.requests", 1000, "how many requests TestSoak sends (make soak: 10000)")

const (
	soakWorkers      = 64
	soakFetchTimeout = 2 * time.Second
	// A request waits for at most two token fetches, each bounded by
	// FetchTimeout: the first token and the one after a 401. What a request
	// takes beyond that is its sends, which only a hang makes long: the
	// margin is hang detection, not a measure of speed.
	soakStallBound = 2*soakFetchTimeout + testutil.HangTimeout
	// Each request is sent after a random pause below soakMaxThink, so that
	// a run lasts several token lifetimes (1-3 s) and meets every cache
	// state: fresh, refreshing, expired, failed.
	soakMaxThink = 400 * time.Millisecond
	soakPayload  = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}`
)

// countingCred counts the calls of a credential and how they ended.
type countingCred struct {
	inner                           credential.TokenCredential
	calls, failures, late, inFlight atomic.Int64
}

func (c *countingCred) GetToken(ctx context.Context, scope string) (credential.AccessToken, error) {
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.calls.Add(1)
	tok, err := c.inner.GetToken(ctx, scope)
	if err != nil {
		c.failures.Add(1)
	}
	if ctx.Err() != nil {
		c.late.Add(1) // the fetch timeout ended it, or it returned after it
	}
	return tok, err
}

// sendLog records the Authorization of every request that the transport
// hands to its base, by X-Request-Id: the resends as the transport makes
// them, whether or not they reach the upstream.
type sendLog struct {
	mu    sync.Mutex
	sends map[string][]string
}

func (l *sendLog) wrap(base http.RoundTripper) http.RoundTripper {
	return testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		l.mu.Lock()
		id := r.Header.Get("X-Request-Id")
		l.sends[id] = append(l.sends[id], r.Header.Get("Authorization"))
		l.mu.Unlock()
		return base.RoundTrip(r)
	})
}

// requestLogs records log records as testutil.Logs does, each with a
// "request" attribute: the X-Request-Id of the request whose RoundTrip
// logged it. The transport logs without the request's context, so the
// goroutine that runs RoundTrip (http.Client.Do calls it on the caller's
// goroutine) is what links a record to its request.
type requestLogs struct {
	*testutil.Logs
	current *sync.Map // goroutine id -> request id
}

func (h requestLogs) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := h.current.Load(goroutineID()); ok {
		r = r.Clone()
		r.AddAttrs(slog.String("request", id.(string)))
	}
	return h.Logs.Handle(ctx, r)
}

func (h requestLogs) WithAttrs(as []slog.Attr) slog.Handler {
	return requestLogs{Logs: h.Logs.WithAttrs(as).(*testutil.Logs), current: h.current}
}

func (h requestLogs) WithGroup(string) slog.Handler { return h }

// sending runs f with the records logged on this goroutine meanwhile
// marked as id's.
func (h requestLogs) sending(id string, f func()) {
	g := goroutineID()
	h.current.Store(g, id)
	defer h.current.Delete(g)
	f()
}

// goroutineID returns the id of the calling goroutine, from the first line
// of its stack trace: "goroutine 42 [running]:".
func goroutineID() uint64 {
	var buf [64]byte
	line := buf[:runtime.Stack(buf[:], false)]
	line = bytes.TrimPrefix(line, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(line[:bytes.IndexByte(line, ' ')]), 10, 64)
	return id
}

type soakResult struct {
	id         string
	start, end int64 // ticks of soakClock when the call began and ended
	status     int   // 0: no response
	err        error
	cancelled  bool // the caller's context had ended when the call returned
	replayable bool
	dur        time.Duration
}

// TestSoak sends many requests from 64 goroutines through one Transport
// with an OAuth2 credential to an upstream that accepts only valid tokens,
// while tokens live 1-3 s, the token endpoint fails 10 % of its requests,
// tokens are revoked at random, the upstream refuses 2 % of valid tokens
// and callers cancel at random. It then checks every request against what
// the upstream saw and against the log records its RoundTrip made.
//
// The outcome of each request must be one of:
//   - 200, after one send with a valid token, or after a 401 and one resend
//     with another token that was valid (healed);
//   - 401 returned after one resend whose new token was refused too: a
//     hold of that token starts ("refusal_hold"), or one has already; or,
//     when the token was not new to the server (a token as new had been
//     accepted, so this one was revoked or refused at random), the token
//     is dropped;
//   - 401 returned after one send, by rule 5 of the transport:
//     the body could not be replayed (the token is dropped all the same,
//     unless a hold keeps it); no new token could be had ("retry_skipped");
//     the token was fetched after a refusal and refused before any
//     acceptance (a hold starts: "refusal_hold"); or the token is held;
//   - an error wrapping the token endpoint's answer (*credential.OAuth2Error
//     with an injected status), with nothing sent, whether or not the
//     caller had given up;
//   - an error caused by the caller's own cancellation;
//   - a fetch timeout (context.DeadlineExceeded), with nothing sent.
//
// Every request the upstream saw carried a token the endpoint issued; each
// was valid on arrival or was answered 401, and every 401 the caller got
// back was the upstream's. Each resend logged one "retry". A token that a
// 401 made the transport drop is not sent by any request that began after
// that 401 was returned. Stats add up against the token endpoint and the
// upstream, and no request waited longer than two fetch timeouts (plus hang
// detection).
func TestSoak(t *testing.T) {
	n := *soakRequests
	var refused, revoked atomic.Int64
	injected := []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests}
	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{
		ClientID:     "soak-client",
		ClientSecret: "soak-secret",
		LifetimeFunc: func(int64) time.Duration { return time.Duration(1+rand.N(3)) * time.Second },
		Fail: func(int64) (int, string) {
			if rand.N(10) != 0 {
				return 0, ""
			}
			return injected[rand.N(len(injected))], `{"error":"temporarily_unavailable","error_description":"injected"}`
		},
		OnEvent: func(e sandbox.Event) {
			if e.Kind == "refused" {
				refused.Add(1)
			}
		},
	})
	defer idp.Close()
	// The upstream also refuses 2 % of valid tokens, as a resource server
	// with a skewed clock or a lagging key cache does.
	proxy := sandbox.NewProxy(idp, sandbox.ProxyConfig{Fail: func(int64) int {
		if rand.N(50) == 0 {
			return http.StatusUnauthorized
		}
		return 0
	}})
	defer proxy.Close()

	tokenHTTP := &http.Transport{}
	defer tokenHTTP.CloseIdleConnections()
	oauth, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     idp.ClientID(),
		ClientSecret: idp.ClientSecret(),
		TokenURL:     idp.URL,
		HTTPClient:   &http.Client{Transport: tokenHTTP},
	})
	if err != nil {
		t.Fatal(err)
	}
	cred := &countingCred{inner: oauth}
	upstream := &http.Transport{MaxIdleConnsPerHost: soakWorkers}
	defer upstream.CloseIdleConnections()
	sends := &sendLog{sends: map[string][]string{}}
	logs, _ := testutil.NewLogs()
	rlogs := requestLogs{Logs: logs, current: &sync.Map{}}
	tr := transport.New(cred, "api://soak/.default", &transport.Options{
		Base:         sends.wrap(upstream),
		FetchTimeout: soakFetchTimeout,
		Logger:       slog.New(rlogs),
	})
	client := &http.Client{Transport: tr}

	start := time.Now()
	results := make([]soakResult, n)
	var clock atomic.Int64 // orders the calls: a tick at each start and end
	var next, finished atomic.Int64
	var wg sync.WaitGroup
	for range soakWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				time.Sleep(rand.N(soakMaxThink))
				if rand.N(200) == 0 { // 0.5 %: revoke the newest token
					if toks := idp.Tokens(); len(toks) > 0 {
						idp.Revoke(toks[len(toks)-1])
						revoked.Add(1)
					}
				}
				id := fmt.Sprintf("r%05d", i)
				rlogs.sending(id, func() { results[i] = soakOne(client, proxy.URL, id, &clock) })
				finished.Add(1)
			}
		})
	}
	// The run lasts as long as its size makes it: only a stretch in which
	// no request finishes is a hang.
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for last := int64(-1); ; {
		select {
		case <-done:
		case <-time.After(testutil.HangTimeout):
			f := finished.Load()
			if f == last {
				t.Fatalf("no request finished in %v; %d of %d have", testutil.HangTimeout, f, n)
			}
			last = f
			continue
		}
		break
	}
	elapsed := time.Since(start)
	// A background refresh may still run; let it end before counting.
	testutil.Eventually(t, "the last token fetch", func() bool {
		return cred.inFlight.Load() == 0 && tr.Stats().Fetches == cred.calls.Load()
	})

	// What the upstream saw.
	seenBy := map[string][]sandbox.Seen{}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, s := range proxy.Seen() {
		tok, ok := strings.CutPrefix(s.Authorization, "Bearer ")
		if !ok || !idp.Known(tok) {
			fail("request %q reached the upstream without a token the endpoint issued", s.RequestID)
		}
		if !s.Valid && s.Status != http.StatusUnauthorized || s.Valid && s.Status != http.StatusOK && s.Status != http.StatusUnauthorized {
			fail("request %q: token valid %v, answered %d", s.RequestID, s.Valid, s.Status)
		}
		seenBy[s.RequestID] = append(seenBy[s.RequestID], s)
	}

	// What each RoundTrip logged, and the tokens that a hold covers: the
	// last token sent by a request that started a hold.
	logged := map[string]map[string]int{}
	held := map[string]bool{}
	for _, r := range logs.Records() {
		v, ok := r.Attrs["request"]
		if !ok {
			continue // the cache's fetches log on goroutines of their own
		}
		id := v.String()
		if logged[id] == nil {
			logged[id] = map[string]int{}
		}
		logged[id][r.Event()]++
		if r.Event() == "refusal_hold" {
			if sent := sends.sends[id]; len(sent) > 0 {
				held[sent[len(sent)-1]] = true
			}
		}
	}

	var ok, healed, resentStill401, resentDropped401, dropped401, keptUnreplayable401, noToken401, refusedWhenNew401, held401, cancelled, tokenErrs, fetchTimeouts, retries, lostResends int
	// dropped maps a token that the transport dropped after a 401 to the
	// earliest tick at which the call that dropped it had returned.
	dropped := map[string]int64{}
	durs := make([]time.Duration, 0, n)
	for _, r := range results {
		sent, seen, ev := sends.sends[r.id], seenBy[r.id], logged[r.id]
		delete(seenBy, r.id)
		durs = append(durs, r.dur)
		if !r.cancelled && r.dur > soakStallBound {
			fail("%s took %v; want at most %v", r.id, r.dur, soakStallBound)
		}
		switch {
		case len(sent) > 2:
			fail("%s sent %d times; want at most 2", r.id, len(sent))
		case len(seen) > len(sent):
			fail("%s: the upstream saw %d sends of %d", r.id, len(seen), len(sent))
		case len(seen) < len(sent) && !r.cancelled:
			fail("%s: %d sends but the upstream saw %d, and the caller did not cancel", r.id, len(sent), len(seen))
		case len(sent) == 2 && sent[0] == sent[1]:
			fail("%s resent with the token that was refused", r.id)
		case len(seen) == 2 && seen[0].Status != http.StatusUnauthorized:
			fail("%s resent after a success", r.id)
		}
		if len(sent) == 2 {
			retries++
			if len(seen) < 2 {
				lostResends++
			}
		}
		if got, want := ev["retry"], max(len(sent)-1, 0); got != want {
			fail("%s: %d sends, %d retry records; want %d", r.id, len(sent), got, want)
		}
		returned401 := r.err == nil && r.status == http.StatusUnauthorized
		if ev["retry_skipped"] > 1 || ev["retry_skipped"] == 1 && !(returned401 && len(sent) == 1 && r.replayable) {
			fail("%s: %d retry_skipped records, %d sends, replayable %v, status %d, err %v; want one only for a replayable request whose 401 came back after one send",
				r.id, ev["retry_skipped"], len(sent), r.replayable, r.status, r.err)
		}
		if ev["refusal_hold"] > 1 || ev["refusal_hold"] == 1 && !returned401 {
			fail("%s: %d refusal_hold records, status %d, err %v; want one only for a request whose 401 came back", r.id, ev["refusal_hold"], r.status, r.err)
		}
		// The token of a 401 that the transport dropped (rule 5): after a
		// resend or a skipped one it always was; after an unreplayable
		// 401 it was unless a hold kept it.
		if len(seen) > 0 && seen[0].Status == http.StatusUnauthorized && len(sent) > 0 {
			tok := sent[0]
			if ev["retry"]+ev["retry_skipped"] > 0 || returned401 && len(sent) == 1 && !r.replayable && ev["refusal_hold"] == 0 && !held[tok] {
				if at, ok := dropped[tok]; !ok || r.end < at {
					dropped[tok] = r.end
				}
			}
		}

		last := len(seen) - 1
		switch {
		case r.err == nil && r.status == http.StatusOK:
			ok++
			if last < 0 || seen[last].Status != http.StatusOK {
				fail("%s: 200, but the upstream did not accept its last send", r.id)
			} else if last == 1 {
				healed++
			}
		case returned401:
			switch {
			case last < 0 || seen[last].Status != http.StatusUnauthorized:
				fail("%s: 401 returned, but the upstream did not answer 401", r.id)
			case len(sent) == 2:
				resentStill401++
				if ev["refusal_hold"] == 0 && !held[sent[1]] {
					// No hold: the resend's token was not new to the
					// server. The transport had seen a token as new
					// as it accepted (by another request, just before)
					// or refused already, so the server revoked it or
					// refused it at random, and the transport dropped
					// it as after any other 401. The rule 5 check
					// below holds it to that.
					resentDropped401++
					if at, ok := dropped[sent[1]]; !ok || r.end < at {
						dropped[sent[1]] = r.end
					}
				}
			case !r.replayable && (ev["refusal_hold"] > 0 || held[sent[0]]):
				keptUnreplayable401++
			case !r.replayable:
				dropped401++
			case ev["retry_skipped"] == 1:
				noToken401++
			case ev["refusal_hold"] == 1:
				refusedWhenNew401++
			case held[sent[0]]:
				held401++
			default:
				fail("%s: a replayable request got its 401 back after one send, with a token no hold covers and no retry_skipped record", r.id)
			}
		case r.err == nil:
			fail("%s: status %d", r.id, r.status)
		default:
			// A token error wins over the caller's cancellation: a caller
			// that has given up may still learn why nothing was sent.
			var oe *credential.OAuth2Error
			switch {
			case len(sent) == 0 && errors.As(r.err, &oe) && slices.Contains(injected, oe.StatusCode):
				tokenErrs++
			case r.cancelled:
				cancelled++
				if !errors.Is(r.err, context.Canceled) && !errors.Is(r.err, context.DeadlineExceeded) {
					fail("%s: cancelled, but the error is %v", r.id, r.err)
				}
			case len(sent) != 0:
				fail("%s: error %v after %d sends without a cancellation", r.id, r.err, len(sent))
			case errors.Is(r.err, context.DeadlineExceeded):
				fetchTimeouts++
			default:
				fail("%s: unexpected error %v", r.id, r.err)
			}
		}
	}
	for id := range seenBy {
		fail("the upstream saw %q, which no caller sent", id)
	}
	// Rule 5: once a 401 has made the transport drop a token, a request
	// that starts after it does not send that token.
	for _, r := range results {
		if sent := sends.sends[r.id]; len(sent) > 0 {
			if at, ok := dropped[sent[0]]; ok && r.start > at {
				fail("%s sent a token that a 401 had made the transport drop before it began", r.id)
			}
		}
	}
	if total := len(logs.Events("retry_skipped")); total != noToken401 {
		fail("%d retry_skipped records; %d requests got their 401 back for want of a new token", total, noToken401)
	}

	st := tr.Stats()
	if st.Fetches != cred.calls.Load() {
		fail("Stats.Fetches = %d; the credential was called %d times", st.Fetches, cred.calls.Load())
	}
	late, reqs := cred.late.Load(), idp.Requests()
	if late == 0 {
		if st.Fetches != reqs {
			fail("Stats.Fetches = %d; the token endpoint got %d requests", st.Fetches, reqs)
		}
		if st.FetchErrors != refused.Load() || st.FetchErrors != cred.failures.Load() {
			fail("Stats.FetchErrors = %d; the endpoint refused %d, the credential failed %d times", st.FetchErrors, refused.Load(), cred.failures.Load())
		}
	} else {
		// A fetch cut off by FetchTimeout may or may not have reached the
		// endpoint, and may have been answered 200 after the cache gave up.
		if reqs < st.Fetches-late || reqs > st.Fetches {
			fail("Stats.Fetches = %d with %d cut off; the token endpoint got %d requests", st.Fetches, late, reqs)
		}
		if st.FetchErrors < refused.Load() || st.FetchErrors > refused.Load()+late {
			fail("Stats.FetchErrors = %d with %d cut off; the endpoint refused %d", st.FetchErrors, late, refused.Load())
		}
	}
	if st.Retries != int64(retries) || st.Retries != int64(len(logs.Events("retry"))) {
		fail("Stats.Retries = %d; the transport resent %d requests and logged %d retries", st.Retries, retries, len(logs.Events("retry")))
	}

	slices.SortFunc(results, func(a, b soakResult) int { return int(b.dur - a.dur) })
	for _, r := range results[:min(3, n)] {
		t.Logf("soak: slow: %s took %v: status %d, err %v, %d sends, cancelled %v", r.id, r.dur.Round(time.Millisecond), r.status, r.err, len(sends.sends[r.id]), r.cancelled)
	}
	slices.Sort(durs)
	t.Logf("soak: %d requests from %d goroutines in %v: %d ok (%d healed by a resend); 401 returned: %d after a refused resend (%d of them dropped, not held), %d unreplayable (token dropped), %d unreplayable (token held), %d without a new token, %d refused when new, %d held; %d cancelled by the caller; %d token errors, %d fetch timeouts",
		n, soakWorkers, elapsed.Round(time.Millisecond), ok, healed, resentStill401, resentDropped401, dropped401, keptUnreplayable401, noToken401, refusedWhenNew401, held401, cancelled, tokenErrs, fetchTimeouts)
	t.Logf("soak: token endpoint: %d requests, %d issued, %d refused, %d revoked; Stats %+v; upstream: %d requests, %d rejected; resends %d (%d cut off by the caller); holds %d; fetches cut off %d",
		reqs, idp.Issued(), refused.Load(), revoked.Load(), st, proxy.Requests(), proxy.Rejected(), retries, lostResends, len(logs.Events("refusal_hold")), late)
	if n > 0 {
		t.Logf("soak: duration p50 %v, p99 %v, max %v (bound %v)",
			durs[n/2].Round(time.Millisecond), durs[n*99/100].Round(time.Millisecond), durs[n-1].Round(time.Millisecond), soakStallBound)
	}
	if ok == 0 && n > 0 {
		fail("no request succeeded")
	}
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more", len(problems)-20)
			break
		}
		t.Error(p)
	}
}

// soakOne sends one request with a random body kind, cancelling it now
// and then.
func soakOne(client *http.Client, base, id string, clock *atomic.Int64) soakResult {
	res := soakResult{id: id, replayable: true}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	switch rand.N(100) {
	case 0: // 1 %: the caller has given up already
		ctx, cancel = context.WithCancel(ctx)
		cancel()
	case 1, 2, 3, 4, 5: // 5 %: the caller gives up within about as long as a request takes
		ctx, cancel = context.WithTimeout(ctx, rand.N(3*time.Millisecond))
	}
	defer cancel()
	var req *http.Request
	switch k := rand.N(10); {
	case k < 4:
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/models", nil)
	case k < 9:
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", strings.NewReader(soakPayload))
	default: // a body without GetBody cannot be replayed
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", io.NopCloser(strings.NewReader(soakPayload)))
		res.replayable = false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", id)
	start := time.Now()
	res.start = clock.Add(1)
	resp, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.status = resp.StatusCode
	}
	res.end = clock.Add(1)
	res.dur = time.Since(start)
	res.err = err
	res.cancelled = ctx.Err() != nil
	return res
}
