package transport

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// A token endpoint that answers 503 with a Retry-After is waited for, end
// to end: credential.NewOAuth2 reads the header, the cache learns the delay
// from the error and starts no token request before it has passed, however
// many requests come meanwhile; the first request after it gets a token.
// The token endpoint is httpmock's: a canned answer is all it needs to give.
func TestRetryAfterEndToEnd(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header // of the 503
		want   time.Duration
	}{
		{"delay seconds", http.Header{"Retry-After": {"20"}}, 20 * time.Second},
		// A date counts from the answer's Date header, so this test does
		// not depend on the real clock that OAuth2 reads.
		{"HTTP date", http.Header{"Retry-After": {"Fri, 02 Jan 2026 03:05:35 GMT"}, "Date": {"Fri, 02 Jan 2026 03:04:05 GMT"}}, 90 * time.Second},
		{"capped at 5 minutes", http.Header{"Retry-After": {"3600"}}, 5 * time.Minute},
		// Shorter than the first backoff step (200 ms without jitter).
		{"zero", http.Header{"Retry-After": {"0"}}, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testutil.NewClock()
			var down atomic.Bool
			down.Store(true)
			idp := httpmock.NewMockTransport()
			idp.RegisterResponder(http.MethodPost, "https://idp.example/token", func(*http.Request) (*http.Response, error) {
				if down.Load() {
					resp := httpmock.NewStringResponse(http.StatusServiceUnavailable, `{"error":"temporarily_unavailable"}`)
					for k, v := range tt.header {
						resp.Header[k] = v
					}
					resp.Header.Set("Content-Type", "application/json")
					return resp, nil
				}
				resp := httpmock.NewStringResponse(http.StatusOK, `{"access_token":"tok-ok","token_type":"Bearer","expires_in":3600}`)
				resp.Header.Set("Content-Type", "application/json")
				return resp, nil
			})
			oauth, err := credential.NewOAuth2(credential.OAuth2Config{
				ClientID:     "app",
				ClientSecret: "app-secret",
				TokenURL:     "https://idp.example/token",
				HTTPClient:   &http.Client{Transport: idp},
			})
			if err != nil {
				t.Fatal(err)
			}
			up := &upstream{}
			tr := newTransport(oauth, "s", &Options{Base: up}, clk.Now, noJitter)
			start := clk.Now()

			_, errs := concurrently(t, 8, tr, func() *http.Request { return httpGet("https://llm.example.com/") })
			for _, err := range errs {
				var fe *FetchError
				var oe *credential.OAuth2Error
				if !errors.As(err, &fe) || !errors.As(err, &oe) || oe.StatusCode != 503 {
					t.Fatalf("err = %v; want a FetchError around the 503", err)
				}
				if got := fe.NextTry.Sub(start); got != tt.want {
					t.Fatalf("NextTry = now+%v; want now+%v", got, tt.want)
				}
			}
			if n := idp.GetTotalCallCount(); n != 1 {
				t.Fatalf("token requests from 8 requests = %d; want 1", n)
			}

			down.Store(false)
			clk.Set(start.Add(tt.want - time.Nanosecond))
			if _, _, err := send(tr, httpGet("https://llm.example.com/")); err == nil {
				t.Fatal("a nanosecond before the wait ended: a request got a token")
			}
			if n := idp.GetTotalCallCount(); n != 1 {
				t.Fatalf("token requests a nanosecond before the wait ended = %d; want 1", n)
			}
			clk.Set(start.Add(tt.want))
			get(t, tr, "https://llm.example.com/")
			if n := idp.GetTotalCallCount(); n != 2 {
				t.Fatalf("token requests after the wait = %d; want 2", n)
			}
			if s := up.sends(); len(s) != 1 || s[0].auth != "Bearer tok-ok" {
				t.Fatalf("upstream got %v; want one request with the new token", s)
			}
		})
	}
}

// The transport hands its random source to the cache: with a source that
// gives 0.5, the first backoff step is 150 ms, not 200 ms, and a 1 h
// token's refresh point is 52 minutes after its fetch, not 55.
func TestJitterThroughTransport(t *testing.T) {
	clk := testutil.NewClock()
	var failing atomic.Bool
	failing.Store(true)
	var calls atomic.Int64
	cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		calls.Add(1)
		if failing.Load() {
			return credential.AccessToken{}, errors.New("identity provider says no")
		}
		return credential.AccessToken{Token: "tok", ExpiresOn: clk.Now().Add(time.Hour)}, nil
	})
	tr := newTransport(cred, "s", &Options{Base: &upstream{}}, clk.Now, func() float64 { return 0.5 })
	start := clk.Now()
	_, _, err := send(tr, httpGet("https://llm.example.com/"))
	var fe *FetchError
	if !errors.As(err, &fe) || fe.NextTry.Sub(start) != 150*time.Millisecond {
		t.Fatalf("err = %v; want a FetchError with the next try in 150ms", err)
	}
	failing.Store(false)
	clk.Set(fe.NextTry)
	get(t, tr, "https://llm.example.com/")
	fetched := clk.Now()
	clk.Set(fetched.Add(52*time.Minute - time.Nanosecond))
	get(t, tr, "https://llm.example.com/")
	if n := calls.Load(); n != 2 {
		t.Fatalf("credential calls before the refresh point = %d; want 2", n)
	}
	clk.Set(fetched.Add(52 * time.Minute))
	get(t, tr, "https://llm.example.com/")
	testutil.Eventually(t, "the background refresh at 52 minutes", func() bool { return calls.Load() == 3 })
}
