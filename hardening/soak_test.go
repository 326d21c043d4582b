package hardening_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
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
	// FetchTimeout: the first token and the one after a 401. The rest is a
	// margin for a loaded machine; the bound holds by design, so a noisy
	// machine cannot break it.
	soakStallBound = 2*soakFetchTimeout + 5*time.Second
	// Each request is sent after a random pause below soakMaxThink, so that
	// a run lasts several token lifetimes (1-3 s) and meets every cache
	// state: fresh, refreshing, expired, failed.
	soakMaxThink = 400 * time.Millisecond
	soakPayload  = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}`
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

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
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		l.mu.Lock()
		id := r.Header.Get("X-Request-Id")
		l.sends[id] = append(l.sends[id], r.Header.Get("Authorization"))
		l.mu.Unlock()
		return base.RoundTrip(r)
	})
}

// countHandler counts the transport's warnings that a 401 was returned
// because no new token could be had, and that a newly fetched token was
// refused too (after which 401s to that token are returned for a while).
type countHandler struct{ notResent, refusedNew *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	switch {
	case strings.Contains(r.Message, "401 not resent"):
		h.notResent.Add(1)
	case strings.Contains(r.Message, "newly fetched token was refused too"):
		h.refusedNew.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

type soakResult struct {
	id         string
	status     int // 0: no response
	err        error
	cancelled  bool // the caller's context had ended when the call returned
	replayable bool
	dur        time.Duration
}

// TestSoak sends many requests from 64 goroutines through one Transport
// with an OAuth2 credential to an upstream that accepts only valid tokens,
// while tokens live 1-3 s, the token endpoint fails 10 % of its requests,
// tokens are revoked at random, the upstream refuses 2 % of valid tokens
// and callers cancel at random. It then checks
// every request against what the upstream saw.
//
// The outcome of each request must be one of:
//   - 200, after one send with a valid token, or after a 401 and one resend
//     with another token that was valid (healed);
//   - 401 returned after one resend whose new token was refused too
//     (revoked or expired meanwhile);
//   - 401 returned after one send because the body could not be replayed,
//     or because no new token could be had (the transport warns of each:
//     the counts must match), or because the token had been refused when
//     it was new (the transport then returns 401s to it for a while);
//   - an error wrapping the token endpoint's answer (*credential.OAuth2Error
//     with an injected status), with nothing sent, whether or not the
//     caller had given up;
//   - an error caused by the caller's own cancellation;
//   - a fetch timeout (context.DeadlineExceeded), with nothing sent.
//
// Every request the upstream saw carried a token the endpoint issued; each
// was valid on arrival or was answered 401, and every 401 the caller got
// back was the upstream's. Stats add up against the token
// endpoint and the upstream, and no request took longer than two fetch
// timeouts plus a margin.
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
	var notResent, refusedNew atomic.Int64
	tr := transport.New(cred, "api://soak/.default", &transport.Options{
		Base:         sends.wrap(upstream),
		FetchTimeout: soakFetchTimeout,
		Logger:       slog.New(countHandler{notResent: &notResent, refusedNew: &refusedNew}),
	})
	client := &http.Client{Transport: tr}

	start := time.Now()
	results := make([]soakResult, n)
	var next atomic.Int64
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
				results[i] = soakOne(client, proxy.URL, fmt.Sprintf("r%05d", i))
			}
		})
	}
	wg.Wait()
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

	// Tokens that were refused although just fetched for a resend: the
	// transport returns further 401s to them without a fetch for a while.
	refusedFresh := map[string]bool{}
	for _, seen := range seenBy {
		if len(seen) == 2 && seen[1].Status == http.StatusUnauthorized {
			refusedFresh[seen[1].Authorization] = true
		}
	}
	var ok, healed, resentStill401, unreplayable401, noToken401, maybeHeld401, cancelled, tokenErrs, fetchTimeouts, retries, lostResends int
	durs := make([]time.Duration, 0, n)
	for _, r := range results {
		sent, seen := sends.sends[r.id], seenBy[r.id]
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
		last := len(seen) - 1
		switch {
		case r.err == nil && r.status == http.StatusOK:
			ok++
			if last < 0 || seen[last].Status != http.StatusOK {
				fail("%s: 200, but the upstream did not accept its last send", r.id)
			} else if last == 1 {
				healed++
			}
		case r.err == nil && r.status == http.StatusUnauthorized:
			switch {
			case last < 0 || seen[last].Status != http.StatusUnauthorized:
				fail("%s: 401 returned, but the upstream did not answer 401", r.id)
			case len(sent) == 2:
				resentStill401++
			case !r.replayable:
				unreplayable401++
			case refusedFresh[seen[last].Authorization]:
				maybeHeld401++ // held, or no new token after the hold
			default:
				noToken401++
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
	if got := notResent.Load(); got < int64(noToken401) || got > int64(noToken401+maybeHeld401) {
		fail("%d replayable requests got their 401 back after one send (%d more with a token refused when new); the transport warned %d times that it had no new token",
			noToken401, maybeHeld401, got)
	}
	// Resends refused at once with the same new token start one hold and
	// one warning between them.
	if got := refusedNew.Load(); got > int64(resentStill401) || (resentStill401 > 0 && got == 0) {
		fail("%d resends were refused; the transport warned of %d holds", resentStill401, got)
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
	if st.Retries != int64(retries) {
		fail("Stats.Retries = %d; the transport resent %d requests", st.Retries, retries)
	}

	slices.SortFunc(results, func(a, b soakResult) int { return int(b.dur - a.dur) })
	for _, r := range results[:min(3, n)] {
		t.Logf("soak: slow: %s took %v: status %d, err %v, %d sends, cancelled %v", r.id, r.dur.Round(time.Millisecond), r.status, r.err, len(sends.sends[r.id]), r.cancelled)
	}
	slices.Sort(durs)
	t.Logf("soak: %d requests from %d goroutines in %v: %d ok (%d healed by a resend), 401 returned: %d after a refused resend, %d unreplayable, %d without a new token, %d to a token refused when new; %d cancelled by the caller; %d token errors, %d fetch timeouts",
		n, soakWorkers, elapsed.Round(time.Millisecond), ok, healed, resentStill401, unreplayable401, noToken401, maybeHeld401, cancelled, tokenErrs, fetchTimeouts)
	t.Logf("soak: token endpoint: %d requests, %d issued, %d refused, %d revoked; Stats %+v; upstream: %d requests, %d rejected; resends %d (%d cut off by the caller); fetches cut off %d",
		reqs, idp.Issued(), refused.Load(), revoked.Load(), st, proxy.Requests(), proxy.Rejected(), retries, lostResends, late)
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
func soakOne(client *http.Client, base, id string) soakResult {
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
	resp, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.status = resp.StatusCode
	}
	res.dur = time.Since(start)
	res.err = err
	res.cancelled = ctx.Err() != nil
	return res
}
