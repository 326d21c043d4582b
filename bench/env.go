package bench

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

// env is one peer wired to a sandbox of its own: a token endpoint, an
// OpenAI-compatible proxy that accepts only that endpoint's valid tokens,
// and the peer between two recorders, so that its delay is measured the
// same way for every peer: from the outermost RoundTripper to the base.
type env struct {
	idp      *sandbox.TokenServer
	proxy    *sandbox.Proxy
	client   *http.Client
	upstream *http.Transport
	tokens   *http.Transport
	refused  atomic.Int64 // token requests the endpoint refused
}

type envConfig struct {
	token  sandbox.TokenServerConfig
	proxy  sandbox.ProxyConfig
	margin time.Duration
	conns  int // connections to the proxy, at most
}

func newEnv(p Peer, c envConfig) (*env, error) {
	e := &env{}
	onEvent := c.token.OnEvent
	c.token.OnEvent = func(ev sandbox.Event) {
		if ev.Kind == "refused" {
			e.refused.Add(1)
		}
		if onEvent != nil {
			onEvent(ev)
		}
	}
	e.idp = sandbox.NewTokenServer(c.token)
	c.proxy.DiscardSeen = true
	e.proxy = sandbox.NewProxy(e.idp, c.proxy)

	e.tokens = &http.Transport{MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: 10 * time.Second}
	src := Source{Endpoint: &Endpoint{
		TokenURL:     e.idp.URL,
		ClientID:     e.idp.ClientID(),
		ClientSecret: e.idp.ClientSecret(),
		HTTPClient:   &http.Client{Transport: e.tokens, Timeout: 10 * time.Second},
	}}

	conns := max(c.conns, 1)
	e.upstream = &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, ResponseHeaderTimeout: 30 * time.Second}
	rt, err := p.New(src, arrivalRecorder{e.upstream}, c.margin)
	if err != nil {
		e.close()
		return nil, err
	}
	e.client = &http.Client{Transport: startRecorder{rt}}
	return e, nil
}

func (e *env) close() {
	if e.upstream != nil {
		e.upstream.CloseIdleConnections()
	}
	e.tokens.CloseIdleConnections()
	e.proxy.Close()
	e.idp.Close()
}

// timing travels in a request's context from the outermost RoundTripper to
// the base. Both ends run on the goroutine that sends the request.
type timing struct{ start, arrive time.Time }

type timingKey struct{}

// startRecorder is the outermost RoundTripper: it notes when the request
// enters the auth layer.
type startRecorder struct{ next http.RoundTripper }

func (s startRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if t, _ := r.Context().Value(timingKey{}).(*timing); t != nil {
		t.start = time.Now()
	}
	return s.next.RoundTrip(r)
}

// arrivalRecorder is the base under the auth layer: it notes when the
// request first leaves it (a resend after 401 is not a new arrival).
type arrivalRecorder struct{ next http.RoundTripper }

func (a arrivalRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if t, _ := r.Context().Value(timingKey{}).(*timing); t != nil && t.arrive.IsZero() {
		t.arrive = time.Now()
	}
	return a.next.RoundTrip(r)
}

// outcome is what one request saw.
type outcome struct {
	start, end time.Time
	delay      time.Duration // in the auth layer; -1: never reached the base
	status     int           // 0: an error
}

func (o outcome) ok() bool { return o.status == http.StatusOK }

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}`

// send sends one chat completion and reads the whole answer.
func (e *env) send(ctx context.Context) outcome {
	t := &timing{}
	ctx = context.WithValue(ctx, timingKey{}, t)
	o := outcome{start: time.Now(), delay: -1}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.proxy.URL+"/chat/completions", strings.NewReader(chatBody))
	if err != nil {
		o.end = time.Now()
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		o.status = resp.StatusCode
	}
	o.end = time.Now()
	if !t.arrive.IsZero() {
		o.delay = t.arrive.Sub(t.start)
	}
	return o
}
