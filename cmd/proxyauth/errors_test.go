package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// TestServeUpstreamDown checks that a request to an upstream that refuses
// connections gets a 502 whose body names the upstream, and no token or
// secret.
func TestServeUpstreamDown(t *testing.T) {
	idp := newIdP(t)
	addr, err := sandbox.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	upstream := "http://" + addr + "/llm"
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", upstream+"?code=query-key-not-to-show")
	resp, body := s.do(t, http.MethodPost, "/v1/chat/completions", nil, chatBody(false, 0))
	code, msg := apiError(t, body)
	if resp.StatusCode != http.StatusBadGateway || code != "upstream_unreachable" || !strings.Contains(msg, upstream) || !strings.Contains(msg, "refused") {
		t.Errorf("status %d, error %q %q; want 502 upstream_unreachable naming %s and the cause", resp.StatusCode, code, msg, upstream)
	}
	for _, secret := range append(idp.Tokens(), idp.ClientSecret(), "query-key-not-to-show") {
		if strings.Contains(body, secret) || strings.Contains(s.stderr.String(), secret) {
			t.Errorf("the answer or the log holds %q", secret)
		}
	}
	if m := scrape(t, s, nil); m[`proxyauth_requests_total{outcome="upstream_error"}`] != 1 {
		t.Errorf("metrics: %v; want one upstream error", m)
	}
}

// TestServeNoToken checks that a request for which the identity provider
// gives no token gets a 503 with the provider's error in words, never the
// client secret, even from a provider that echoes it, and a Retry-After.
func TestServeNoToken(t *testing.T) {
	echo := sandbox.Faults()[2]
	if echo.Name != "503 Retry-After" {
		t.Fatalf("sandbox fault 2 is %q", echo.Name)
	}
	// Retry-After says when the next token request may start. Without one
	// from the provider that is a backoff step of 100 to 200 ms, which a
	// slow machine may have let pass before the answer: the header is
	// required only where the provider asked for a wait.
	tests := []struct {
		name       string
		setup      func(*sandbox.TokenServer, map[string]string)
		want       []string
		retryAfter bool
	}{
		{"wrong secret", func(_ *sandbox.TokenServer, env map[string]string) {
			env["PROXYAUTH_CLIENT_SECRET"] = "wrong-secret-not-to-show"
		}, []string{"401", "invalid_client", "client authentication failed"}, false},
		{"down", func(idp *sandbox.TokenServer, _ map[string]string) {
			idp.SetDown(http.StatusServiceUnavailable)
		}, []string{"503", "temporarily_unavailable", "the token service is down"}, true},
		{"echoes the secret", func(idp *sandbox.TokenServer, _ map[string]string) {
			idp.SetFault(echo.Handler)
		}, []string{"503", "temporarily_unavailable", "maintenance"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := newIdP(t)
			llm := newLLM(t, idp, sandbox.ProxyConfig{})
			env := sandboxEnv(idp)
			tt.setup(idp, env)
			s := startServe(t, &command{}, env, "--upstream", llm.URL, "--log-format", "json")
			resp, body := s.do(t, http.MethodPost, "/chat/completions", nil, chatBody(false, 0))
			code, msg := apiError(t, body)
			if resp.StatusCode != http.StatusServiceUnavailable || code != "no_token" || !strings.Contains(msg, llm.URL) {
				t.Errorf("status %d, error %q %q; want 503 no_token naming the upstream", resp.StatusCode, code, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the message %q does not say %q", msg, w)
				}
			}
			if h := resp.Header.Get("Retry-After"); h != "" || tt.retryAfter {
				if ra, err := strconv.Atoi(h); err != nil || ra < 1 || ra > 300 {
					t.Errorf("Retry-After %q; want seconds until the next token request", h)
				}
			}
			for _, secret := range []string{idp.ClientSecret(), env["PROXYAUTH_CLIENT_SECRET"]} {
				if strings.Contains(body, secret) || strings.Contains(s.stderr.String(), secret) {
					t.Errorf("the answer or the log holds the secret %q", secret)
				}
			}
			if n := llm.Requests(); n != 0 {
				t.Errorf("the upstream got %d requests without a token; want none", n)
			}
			if len(events(t, s.stderr.String(), "no_token")) != 1 {
				t.Errorf("want one no_token log record:\n%s", s.stderr)
			}
		})
	}
}

// TestServeClientGoneCancelsUpstream checks that a client that hangs up in
// the middle of a streamed answer cancels the request to the upstream,
// which then stops generating.
func TestServeClientGoneCancelsUpstream(t *testing.T) {
	idp := newIdP(t)
	reached := make(chan struct{})
	canceled := make(chan struct{})
	llm := newLLM(t, idp, sandbox.ProxyConfig{StreamChunks: 3, BeforeChunk: func(r *http.Request, i int) {
		if i != 1 {
			return
		}
		close(reached)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-t.Context().Done():
		}
	}})
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", llm.URL)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/chat/completions", strings.NewReader(chatBody(true, 0)))
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "chunk-0") {
		t.Fatalf("first line %q, %v; want chunk 0", line, err)
	}
	testutil.Recv(t, reached, "the upstream to hold chunk 1")
	resp.Body.Close() // closes the connection: the stream is not done
	testutil.Recv(t, canceled, "the upstream request to be canceled after the client hung up")
	testutil.Eventually(t, "the gateway to count the client as gone", func() bool {
		_, body := s.do(t, http.MethodGet, "/metrics", nil, "")
		return strings.Contains(body, "proxyauth_in_flight_requests 0\n")
	})
}

// TestServeClientGoneBeforeTheAnswer checks that a client that hangs up
// before the upstream has answered cancels the upstream request, and is
// counted and logged as gone, not as an upstream that failed.
func TestServeClientGoneBeforeTheAnswer(t *testing.T) {
	idp := newIdP(t)
	reached, canceled := make(chan struct{}), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As a model server does before it answers; net/http notices a
		// closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		close(reached)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-t.Context().Done():
		}
	}))
	t.Cleanup(upstream.Close)
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", upstream.URL, "--log-format", "json", "--log-level", "debug")

	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/chat/completions", strings.NewReader(chatBody(false, 0)))
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	testutil.Recv(t, reached, "the request to reach the upstream")
	cancel()
	if err := testutil.Recv(t, failed, "the cancelled request to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("the client's request: %v; want its cancellation", err)
	}
	testutil.Recv(t, canceled, "the upstream request to be canceled after the client hung up")
	testutil.Eventually(t, "the gateway to count the client as gone", func() bool {
		m := scrape(t, s, nil)
		return m[`proxyauth_requests_total{outcome="client_gone"}`] == 1
	})
	if m := scrape(t, s, nil); m[`proxyauth_requests_total{outcome="upstream_error"}`] != 0 {
		t.Errorf("metrics %v; want no upstream error", m)
	}
	s.stop(t)
	if n := len(events(t, s.stderr.String(), "client_gone")); n != 1 {
		t.Errorf("%d client_gone records; want 1:\n%s", n, s.stderr)
	}
	if n := len(events(t, s.stderr.String(), "upstream_error")); n != 0 {
		t.Errorf("%d upstream_error records; want none", n)
	}
}
