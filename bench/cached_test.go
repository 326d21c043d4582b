package bench

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/proxyauth/proxyauth/internal/testutil"
)

// The cached path: a token in every peer's cache, a base that answers at
// once with a canned response, so that only the auth layer is measured.

const benchToken = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl"

// benchMargin is the early-refresh margin of every peer in the benchmarks:
// the default of proxyauth and of azcore.
const benchMargin = 5 * time.Minute

// cannedBase answers every request with the same response.
type cannedBase struct{ resp http.Response }

func (b *cannedBase) RoundTrip(*http.Request) (*http.Response, error) { return &b.resp, nil }

func newCanned() *cannedBase {
	return &cannedBase{resp: http.Response{StatusCode: http.StatusOK, Body: http.NoBody}}
}

// floor is the least any header-setting RoundTripper must do: clone the
// request and set the header, as the RoundTripper contract requires.
type floor struct{ base http.RoundTripper }

func (f floor) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+benchToken)
	return f.base.RoundTrip(r)
}

// staticSource hands out benchToken, valid for an hour from the fetch.
var staticSource = Source{Static: func(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: benchToken, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
}}

type impl struct {
	name string // benchmark key: no slash
	rt   http.RoundTripper
}

// impls returns the floor and the three peers over fresh canned bases; with
// perRequest, also azcore as openai-go/v3/azure uses it.
func impls(perRequest bool) []impl {
	out := []impl{{"floor", floor{base: newCanned()}}}
	for _, p := range Peers() {
		rt, err := p.New(staticSource, newCanned(), benchMargin)
		if err != nil {
			panic(err)
		}
		out = append(out, impl{benchKey(p.Name), rt})
	}
	if perRequest {
		out = append(out, impl{"azcore-openai-go", AzcorePerRequest(staticSource, newCanned(), benchMargin)})
	}
	return out
}

func benchKey(name string) string { return strings.ReplaceAll(name, "/", "-") }

// newBenchRequest is what an OpenAI SDK sends, without a body: azcore's
// runtime.NewRequestFromRequest copies a body that cannot seek, and the
// other peers do not touch it, so a body would only add to azcore's cost.
func newBenchRequest() *http.Request {
	req, _ := http.NewRequest(http.MethodGet, "https://llm.example.com/v1/models", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "OpenAI/Go 3.0")
	req.Header.Set("X-Stainless-Retry-Count", "0")
	return req
}

func warm(tb testing.TB, rt http.RoundTripper) {
	tb.Helper()
	resp, err := rt.RoundTrip(newBenchRequest())
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
}

// BenchmarkCached is the cached path, one goroutine.
func BenchmarkCached(b *testing.B) {
	for _, im := range impls(true) {
		b.Run("impl="+im.name, func(b *testing.B) {
			warm(b, im.rt)
			req := newBenchRequest()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := im.rt.RoundTrip(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCachedParallel is the cached path under b.RunParallel: one
// goroutine per P.
func BenchmarkCachedParallel(b *testing.B) {
	for _, im := range impls(true) {
		b.Run("impl="+im.name, func(b *testing.B) {
			warm(b, im.rt)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := newBenchRequest()
				for pb.Next() {
					if _, err := im.rt.RoundTrip(req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// scalingLevels are the goroutine counts of BenchmarkScaling.
var scalingLevels = []int{1, 8, 64, 512}

// BenchmarkScaling is the cached path with a fixed number of goroutines,
// whatever GOMAXPROCS is. Each goroutine sends its share of b.N requests;
// ns/op is wall time over all requests, so lower is more throughput.
func BenchmarkScaling(b *testing.B) {
	for _, im := range impls(false) {
		for _, g := range scalingLevels {
			b.Run("impl="+im.name+"/goroutines="+strconv.Itoa(g), func(b *testing.B) {
				warm(b, im.rt)
				b.ReportAllocs()
				runConcurrently(b, im.rt, g)
			})
		}
	}
}

// runConcurrently sends b.N requests through rt from g goroutines, split
// evenly, all released at once.
func runConcurrently(b *testing.B, rt http.RoundTripper, g int) {
	reqs := make([]*http.Request, g)
	for i := range reqs {
		reqs[i] = newBenchRequest()
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range g {
		n := b.N / g
		if i < b.N%g {
			n++
		}
		wg.Go(func() {
			req := reqs[i]
			<-start
			for range n {
				if _, err := rt.RoundTrip(req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ResetTimer()
	close(start)
	testutil.Wait(b, &wg, "the goroutines to send their requests")
	b.StopTimer()
}
