package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/transport"
)

// scope is what both auth layers ask the token endpoint for.
const scope = "api://llm-proxy/.default"

// Config is one run of the workload: the same for every auth layer.
type Config struct {
	Workers       int           // concurrent openai-go callers
	Duration      time.Duration // how long each auth layer is driven
	TokenLifetime time.Duration // of every token; whole seconds, as expires_in is
	TokenLatency  time.Duration // added to every token request
	RefreshBefore time.Duration // early-refresh margin of both layers; at most half the lifetime
	ProxyLatency  time.Duration // added to every model call
	RevokeAt      time.Duration // when all issued tokens are revoked, from the start of a layer's run

	// OnEvent, if set, hears of every token event of the named layer's
	// token endpoint as it happens. Events never carry the token.
	OnEvent func(layer string, since time.Duration, e sandbox.Event)
	// OnLayer, if set, hears the name of each layer as its run starts, so
	// that a reader is told what the silence is about.
	OnLayer func(layer string)
}

func (c Config) check() error {
	switch {
	case c.Workers < 1:
		return errors.New("workers must be at least 1")
	case c.Duration <= 0 || c.TokenLatency <= 0 || c.ProxyLatency < 0:
		return errors.New("duration and token latency must be positive")
	case c.TokenLifetime < time.Second || c.TokenLifetime%time.Second != 0:
		return errors.New("the token lifetime must be whole seconds: expires_in carries seconds")
	case c.RefreshBefore <= 0 || c.RefreshBefore > c.TokenLifetime/2:
		// proxyauth never refreshes earlier than half a token's
		// lifetime; x/oauth2 would, which would make the two differ.
		return errors.New("refresh-before must be positive and at most half the token lifetime")
	case c.RevokeAt <= 0 || c.RevokeAt >= c.Duration:
		return errors.New("the revocation must fall inside the run")
	}
	return nil
}

// Report holds what was measured for each auth layer, in the order run.
type Report struct {
	Config Config
	Layers []LayerReport
}

// LayerReport is what one auth layer did under the workload. Every field is
// measured in the run.
type LayerReport struct {
	Name   string
	Setup  string // how the layer was configured, for the reader
	Wall   time.Duration
	Calls  int64 // SDK calls (a call's retries by the SDK are inside it)
	Failed int64 // SDK calls that returned an error

	TokenRequests int64 // that reached the token endpoint
	Rejected      int64 // requests the proxy refused with 401
	Resends       int64 // requests the auth layer sent again within one attempt (after a 401)

	// Waited counts SDK calls that spent longer than half the token
	// latency inside the auth layer, that is, waited for a token. The
	// others split it by what the layer held when the wait began.
	Waited         int64
	WaitedCold     int64 // no token issued yet
	WaitedRevoked  int64 // the held token was revoked, before its refresh point
	WaitedRefresh  int64 // the held token was past its refresh point
	WaitedUnsorted int64 // none of these
	// WaitTime is the time those calls spent in the auth layer, summed
	// over all of them: worker time lost to tokens.
	WaitTime time.Duration

	// P50, P99 and Max are of the SDK calls that succeeded: a call that
	// failed at once on a 401 would make the latency look better.
	P50, P99, Max time.Duration
}

// A layer builds an HTTP client that authenticates requests to the proxy,
// sending them through base and fetching tokens through tokenClient.
type layer struct {
	name  string
	setup func(cfg Config) string
	build func(ctx context.Context, cfg Config, idp *sandbox.TokenServer, tokenClient *http.Client, base http.RoundTripper) (*http.Client, error)
}

var layers = []layer{
	{
		name: "proxyauth",
		setup: func(cfg Config) string {
			return fmt.Sprintf("transport.New(credential.NewOAuth2(...), scope, &transport.Options{RefreshBefore: %v})", cfg.RefreshBefore)
		},
		build: func(_ context.Context, cfg Config, idp *sandbox.TokenServer, tokenClient *http.Client, base http.RoundTripper) (*http.Client, error) {
			cred, err := credential.NewOAuth2(credential.OAuth2Config{
				ClientID:     idp.ClientID(),
				ClientSecret: idp.ClientSecret(),
				TokenURL:     idp.URL,
				AuthStyle:    credential.AuthStyleHeader,
				HTTPClient:   tokenClient,
			})
			if err != nil {
				return nil, err
			}
			tr := transport.New(cred, scope, &transport.Options{Base: base, RefreshBefore: cfg.RefreshBefore})
			return &http.Client{Transport: tr}, nil
		},
	},
	{
		name: "x/oauth2",
		setup: func(cfg Config) string {
			return fmt.Sprintf("&oauth2.Transport{Source: oauth2.ReuseTokenSourceWithExpiry(nil, clientcredentials.Config{...}.TokenSource(ctx), %v)}", cfg.RefreshBefore)
		},
		build: func(ctx context.Context, cfg Config, idp *sandbox.TokenServer, tokenClient *http.Client, base http.RoundTripper) (*http.Client, error) {
			cc := clientcredentials.Config{
				ClientID:     idp.ClientID(),
				ClientSecret: idp.ClientSecret(),
				TokenURL:     idp.URL,
				Scopes:       []string{scope},
				AuthStyle:    oauth2.AuthStyleInHeader,
			}
			// The default early expiry of 10 s exceeds the demo's
			// token lifetime; give it the same margin as proxyauth.
			ctx = context.WithValue(ctx, oauth2.HTTPClient, tokenClient)
			src := oauth2.ReuseTokenSourceWithExpiry(nil, cc.TokenSource(ctx), cfg.RefreshBefore)
			return &http.Client{Transport: &oauth2.Transport{Source: src, Base: base}}, nil
		},
	},
}

// runWorkload drives every auth layer in turn with the same workload: cfg.Workers
// openai-go clients calling a fresh sandbox proxy for cfg.Duration, while a
// fresh token endpoint issues short-lived tokens and revokes them all once.
func runWorkload(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.check(); err != nil {
		return Report{}, err
	}
	rep := Report{Config: cfg}
	for _, l := range layers {
		if cfg.OnLayer != nil {
			cfg.OnLayer(l.name)
		}
		lr, err := runLayer(ctx, cfg, l)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", l.name, err)
		}
		rep.Layers = append(rep.Layers, lr)
	}
	return rep, ctx.Err()
}

// issue is a token the token endpoint issued, as the classification of
// waits needs it.
type issue struct{ at, refreshAt time.Time }

func runLayer(ctx context.Context, cfg Config, l layer) (LayerReport, error) {
	var (
		mu      sync.Mutex
		issues  []issue
		revoked time.Time
		start   time.Time // set before the first token request
	)
	// Fresh transports for each layer, sized for the workers so that
	// connections are reused rather than churned. Their idle connections
	// are closed after the servers have shut down (defers run in reverse),
	// when no request can be left to return one to the pool.
	tokenBase := &http.Transport{}
	defer tokenBase.CloseIdleConnections()
	apiBase := &http.Transport{MaxIdleConnsPerHost: cfg.Workers, MaxIdleConns: cfg.Workers}
	defer apiBase.CloseIdleConnections()

	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{
		Lifetime: cfg.TokenLifetime,
		Latency:  cfg.TokenLatency,
		OnEvent: func(e sandbox.Event) {
			mu.Lock()
			switch e.Kind {
			case "issued":
				issues = append(issues, issue{at: e.Time, refreshAt: e.Expires.Add(-cfg.RefreshBefore)})
			case "revoked":
				revoked = e.Time
			}
			since := e.Time.Sub(start)
			mu.Unlock()
			if cfg.OnEvent != nil {
				cfg.OnEvent(l.name, since, e)
			}
		},
	})
	defer idp.Close()
	proxy := sandbox.NewProxy(idp, sandbox.ProxyConfig{Latency: cfg.ProxyLatency, DiscardSeen: true})
	defer proxy.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hc, err := l.build(ctx, cfg, idp, &http.Client{Transport: tokenBase, Timeout: 10 * time.Second}, inner{apiBase})
	if err != nil {
		return LayerReport{}, err
	}
	hc.Transport = outer{hc.Transport}
	client := openai.NewClient(
		option.WithHTTPClient(hc),
		option.WithBaseURL(proxy.URL),
		option.WithAPIKey("unused"), // the auth layer replaces it; set so that no OPENAI_API_KEY is picked up
	)
	params := openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT5_4Mini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("ping")},
	}

	mu.Lock()
	start = time.Now()
	mu.Unlock()
	stop := start.Add(cfg.Duration)
	revokeDone := make(chan struct{})
	go func() {
		defer close(revokeDone)
		t := time.NewTimer(cfg.RevokeAt)
		defer t.Stop()
		select {
		case <-t.C:
			idp.RevokeAll()
		case <-ctx.Done():
		}
	}()

	results := make([][]call, cfg.Workers)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			for time.Now().Before(stop) && ctx.Err() == nil {
				tr := &trace{}
				t0 := time.Now()
				_, err := client.Chat.Completions.New(withTrace(ctx, tr), params)
				results[w] = append(results[w], call{
					latency:   time.Since(t0),
					failed:    err != nil,
					authDelay: tr.authDelay,
					waitStart: tr.waitStart,
					resends:   tr.resends,
				})
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	cancel()
	<-revokeDone

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(issues, func(a, b issue) int { return a.at.Compare(b.at) })
	lr := LayerReport{
		Name:          l.name,
		Setup:         l.setup(cfg),
		Wall:          wall,
		TokenRequests: idp.Requests(),
		Rejected:      proxy.Rejected(),
	}
	var latencies []time.Duration
	for _, rs := range results {
		for _, c := range rs {
			lr.Calls++
			lr.Resends += c.resends
			if c.failed {
				lr.Failed++
			} else {
				latencies = append(latencies, c.latency)
			}
			if c.authDelay <= cfg.TokenLatency/2 {
				continue
			}
			lr.Waited++
			lr.WaitTime += c.authDelay
			switch classify(c.waitStart, issues, revoked) {
			case waitCold:
				lr.WaitedCold++
			case waitRevoked:
				lr.WaitedRevoked++
			case waitRefresh:
				lr.WaitedRefresh++
			default:
				lr.WaitedUnsorted++
			}
		}
	}
	slices.Sort(latencies)
	lr.P50, lr.P99, lr.Max = percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 100)
	return lr, nil
}

// call is what one worker measured of one SDK call.
type call struct {
	latency   time.Duration
	failed    bool
	authDelay time.Duration
	waitStart time.Time
	resends   int64
}

type waitCause int

const (
	waitUnsorted waitCause = iota
	waitCold
	waitRevoked
	waitRefresh
)

// classify says why a wait that began at ws happened, from what the token
// endpoint had issued by then: nothing (cold start); a token revoked
// before it reached its refresh point (after revocation); a token past its
// refresh point (at a refresh, which a layer that refreshes in the
// background never waits for). issues are in the order issued.
func classify(ws time.Time, issues []issue, revoked time.Time) waitCause {
	i := len(issues) - 1
	for i >= 0 && issues[i].at.After(ws) {
		i--
	}
	if i < 0 {
		return waitCold
	}
	held := issues[i]
	switch {
	case !revoked.IsZero() && !ws.Before(revoked) && held.at.Before(revoked) && ws.Before(held.refreshAt):
		return waitRevoked
	case !ws.Before(held.refreshAt):
		return waitRefresh
	}
	return waitUnsorted
}

// percentile returns the p-th percentile of sorted, by the nearest-rank
// method; 0 for none.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// trace follows one SDK call through the auth layer. outer sits above the
// auth layer and inner below it, where requests leave for the network; the
// time a request spends between them is the auth layer's delay, mostly
// waiting for a token. The SDK sends its attempts one after the other and
// both auth layers call their base on the caller's goroutine, so a trace is
// only ever used by one goroutine at a time.
type trace struct {
	mark      time.Time     // when the request last entered or left the auth layer
	sends     int64         // in the current attempt
	authDelay time.Duration // over all attempts
	longest   time.Duration
	waitStart time.Time // start of the longest stretch in the auth layer
	resends   int64
}

func (t *trace) leaveAuth(now time.Time) {
	d := now.Sub(t.mark)
	t.authDelay += d
	if d > t.longest {
		t.longest, t.waitStart = d, t.mark
	}
}

type traceKey struct{}

func withTrace(ctx context.Context, t *trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceOf(r *http.Request) *trace {
	t, _ := r.Context().Value(traceKey{}).(*trace)
	return t
}

// outer marks a request entering the auth layer.
type outer struct{ next http.RoundTripper }

func (o outer) RoundTrip(r *http.Request) (*http.Response, error) {
	t := traceOf(r)
	if t == nil {
		return o.next.RoundTrip(r)
	}
	t.mark, t.sends = time.Now(), 0
	resp, err := o.next.RoundTrip(r)
	if t.sends == 0 {
		t.leaveAuth(time.Now()) // the layer gave up without sending: it waited all along
	}
	t.resends += max(t.sends-1, 0)
	return resp, err
}

// inner marks a request leaving the auth layer for the network.
type inner struct{ next http.RoundTripper }

func (i inner) RoundTrip(r *http.Request) (*http.Response, error) {
	t := traceOf(r)
	if t == nil {
		return i.next.RoundTrip(r)
	}
	t.leaveAuth(time.Now())
	t.sends++
	resp, err := i.next.RoundTrip(r)
	t.mark = time.Now()
	return resp, err
}
