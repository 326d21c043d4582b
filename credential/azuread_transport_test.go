package credential_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/transport"
)

// MSAL serves a cached token only while more than 5 minutes of it remain,
// so with 60 s tokens every azidentity GetToken goes to the token endpoint.
// The transport's cache must then be what keeps the token requests at one
// per refresh, however many requests run at once.
func TestAzureADThroughTransportOneTokenRequestPerRefresh(t *testing.T) {
	t.Parallel()
	entra := newFakeEntra(t, 60*time.Second)
	// refresh_in becomes RefreshOn, which the transport takes as its
	// refresh point: a refresh every second keeps the test short.
	entra.refreshIn = time.Second

	var (
		mu       sync.Mutex
		seen     = map[string]bool{} // distinct tokens the API received
		requests atomic.Int64
		refused  atomic.Int64
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer entra-token-")
		if !ok {
			refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[tok] = true
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(api.Close)

	tr := transport.New(credential.NewAzureAD(entra.credential(t, entraSecret)), entraScope,
		&transport.Options{Base: api.Client().Transport})
	client := &http.Client{Transport: tr}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}

	// 32 workers send requests until the API has seen three tokens: the
	// first one and two refreshes. The deadline only guards against a hang.
	const workers, wantTokens = 32, 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("request: got error %v; want none", err)
					}
					return
				}
				resp.Body.Close()
				if distinct() >= wantTokens || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the API saw %d tokens before the deadline; want %d", distinct(), wantTokens)
	}

	stats := tr.Stats()
	tokenRequests := entra.tokenRequests.Load()
	n := requests.Load()
	t.Logf("%d requests, %d token requests, %d distinct tokens, stats %+v", n, tokenRequests, distinct(), stats)
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
	if n < workers {
		t.Errorf("requests: got %d; want at least %d", n, workers)
	}
	if n <= 4*tokenRequests {
		t.Errorf("requests: got %d for %d token requests; want many requests per token request", n, tokenRequests)
	}
}
