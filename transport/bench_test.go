package transport

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/proxyauth/proxyauth/credential"
)

// cannedBase answers every request with the same response, so that the
// benchmarks measure what happens before the network.
type cannedBase struct{ resp http.Response }

func (b *cannedBase) RoundTrip(*http.Request) (*http.Response, error) { return &b.resp, nil }

func newCanned() *cannedBase {
	return &cannedBase{resp: http.Response{StatusCode: http.StatusOK, Body: http.NoBody}}
}

const benchToken = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl"

// floor is the least any header-setting RoundTripper must do: clone the
// request and set the header, as the RoundTripper contract requires.
type floor struct{ base http.RoundTripper }

func (f floor) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+benchToken)
	return f.base.RoundTrip(r)
}

func benchRoundTrippers() []struct {
	name string
	rt   http.RoundTripper
} {
	cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		return credential.AccessToken{Token: benchToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
	})
	ts := oauth2.ReuseTokenSourceWithExpiry(nil, oauth2.StaticTokenSource(&oauth2.Token{
		AccessToken: benchToken, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour),
	}), 5*time.Minute)
	return []struct {
		name string
		rt   http.RoundTripper
	}{
		{"floor", floor{base: newCanned()}},
		{"proxyauth", New(cred, "s", &Options{Base: newCanned()})},
		{"x-oauth2", &oauth2.Transport{Source: ts, Base: newCanned()}},
	}
}

func newBenchRequest() *http.Request {
	req, _ := http.NewRequest(http.MethodPost, "https://llm.example.com/v1/chat/completions", http.NoBody)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "OpenAI/Go 3.0")
	req.Header.Set("X-Stainless-Retry-Count", "0")
	return req
}

// BenchmarkRoundTrip measures the cached path: a token in the cache, a base
// that answers at once.
func BenchmarkRoundTrip(b *testing.B) {
	for _, bb := range benchRoundTrippers() {
		b.Run(bb.name, func(b *testing.B) {
			req := newBenchRequest()
			warm(b, bb.rt, req)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := bb.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp
			}
		})
	}
}

// BenchmarkRoundTripParallel is the cached path under b.RunParallel.
func BenchmarkRoundTripParallel(b *testing.B) {
	for _, bb := range benchRoundTrippers() {
		b.Run(bb.name, func(b *testing.B) {
			warm(b, bb.rt, newBenchRequest())
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := newBenchRequest()
				for pb.Next() {
					if _, err := bb.rt.RoundTrip(req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func warm(b *testing.B, rt http.RoundTripper, req *http.Request) {
	b.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
}

// BenchmarkCacheGet is the fresh path of the token cache alone.
func BenchmarkCacheGet(b *testing.B) {
	// An expiring token, so that the clock is read as in production.
	tr := New(credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		return credential.AccessToken{Token: strings.Repeat("t", 64), ExpiresOn: time.Now().Add(time.Hour)}, nil
	}), "s", nil)
	ctx := context.Background()
	if _, err := tr.cache.Get(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.cache.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := tr.cache.Get(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
