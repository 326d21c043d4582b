package azuread_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential/azuread"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/transport"
)

// MSAL serves a cached token only while more than 5 minutes of it remain,
// so with 60 s tokens every azidentity GetToken goes to the token endpoint.
// The transport's cache must then be what keeps the token requests at one
// per refresh, however many requests run at once.
func TestAzureADThroughTransportOneTokenRequestPerRefresh(t *testing.T) {
	t.Parallel()
	const workers, wantTokens = 32, 3
	const apiURL = "https://llm.example/v1/models"

	// The API holds the first request of every worker until all of them
	// have arrived: that many requests in flight at once, all with a token.
	// Until then the fake authority holds any token request after the
	// first, so that a refresh that comes due meanwhile cannot hand some of
	// them a second token, and a transport that fetched once per request
	// would never get them all there.
	first := testutil.NewBarrier(t, workers)
	firstDone := make(chan struct{})
	entra := newFakeEntra(t, 60*time.Second)
	// refresh_in becomes RefreshOn, which the transport takes as its
	// refresh point: a refresh every second keeps the test short.
	entra.refreshIn = time.Second
	entra.beforeToken = func(n int64) {
		if n > 1 {
			select {
			case <-firstDone:
			case <-time.After(testutil.HangTimeout):
			}
		}
	}

	var (
		mu        sync.Mutex
		seen      = map[string]bool{} // distinct tokens the API received
		firstToks = map[string]int{}  // tokens of the held first requests
		requests  atomic.Int64
		refused   atomic.Int64
	)
	api := httpmock.NewMockTransport()
	api.RegisterResponder(http.MethodGet, apiURL, func(r *http.Request) (*http.Response, error) {
		n := requests.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer entra-token-")
		if !ok {
			refused.Add(1)
			return httpmock.NewStringResponse(http.StatusUnauthorized, ""), nil
		}
		mu.Lock()
		seen[tok] = true
		if n <= workers {
			firstToks[tok]++
		}
		mu.Unlock()
		if n <= workers && first.Arrive() && n == workers {
			close(firstDone)
		}
		return httpmock.NewStringResponse(http.StatusNoContent, ""), nil
	})

	tr := transport.New(azuread.New(entra.credential(t, entraSecret)), entraScope, &transport.Options{Base: api})
	client := &http.Client{Transport: tr}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}

	// The workers send requests until the API has seen three tokens: the
	// first one and two refreshes. The deadline only guards against a hang.
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangTimeout)
	defer cancel()
	testutil.Concurrently(t, workers, "worker", func(int) error {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() != nil {
					return nil // the hang guard below reports it
				}
				return err
			}
			resp.Body.Close()
			if distinct() >= wantTokens || ctx.Err() != nil {
				return nil
			}
			// Refreshes come by the clock, not by the number of
			// requests: a pause keeps the workers from taking the CPU
			// from tests that run alongside.
			time.Sleep(5 * time.Millisecond)
		}
	})
	first.Check(t, "first requests of the workers")
	if ctx.Err() != nil {
		t.Fatalf("the API saw %d tokens within %v; want %d", distinct(), testutil.HangTimeout, wantTokens)
	}

	stats := tr.Stats()
	tokenRequests := entra.tokenRequests.Load()
	n := requests.Load()
	t.Logf("%d requests, %d token requests, %d distinct tokens, stats %+v", n, tokenRequests, distinct(), stats)
	mu.Lock()
	if firstToks["1"] != workers {
		t.Errorf("tokens of the %d concurrent first requests: got %v; want all entra-token-1, from one token request", workers, firstToks)
	}
	mu.Unlock()
	if got := refused.Load(); got != 0 {
		t.Errorf("requests without a token: got %d; want 0", got)
	}
	if stats.FetchErrors != 0 {
		t.Errorf("fetch errors: got %d; want 0", stats.FetchErrors)
	}
	// Each fetch of the transport is one token request: MSAL's cache does
	// not help with 60 s tokens.
	if tokenRequests != stats.Fetches {
		t.Errorf("token requests: got %d; want %d, one per fetch", tokenRequests, stats.Fetches)
	}
	// One token request per refresh: every token fetched was used, except
	// at most one refresh still running when the workers stopped.
	if d := int64(distinct()); tokenRequests < d || tokenRequests > d+1 {
		t.Errorf("token requests: got %d; want %d or %d for %d distinct tokens", tokenRequests, d, d+1, d)
	}
}
