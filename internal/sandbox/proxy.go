package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ProxyConfig configures a Proxy. Zero fields take defaults.
type ProxyConfig struct {
	// Latency is added to every accepted request; none by default.
	Latency time.Duration
	// Fail, if set, is asked for every request with a valid token
	// (numbered from 1) whether to fail it with a status, such as 500 or
	// 429, to exercise an SDK's own retries.
	Fail func(n int64) int
	// StreamChunks is how many chunks a streamed completion has; 3.
	StreamChunks int
	// BeforeChunk, if set, is called before chunk i (from 0) of a streamed
	// completion is written, so that a test can hold a chunk back until
	// the client has read the one before.
	BeforeChunk func(r *http.Request, i int)
	// DiscardSeen keeps Seen empty, so that a long load run does not
	// hold a record of every request.
	DiscardSeen bool
}

// Proxy is an OpenAI-compatible LLM proxy that accepts a request only when
// it carries a bearer token that its TokenServer issued and that is neither
// expired nor revoked. It serves /v1/chat/completions (streamed or not),
// /v1/embeddings and /v1/models, and the Azure OpenAI forms of the first
// two under Root: /openai/deployments/{deployment}/chat/completions and
// /openai/deployments/{deployment}/embeddings.
type Proxy struct {
	URL  string // base URL, ending in /v1, for OpenAI clients
	Root string // the server's root URL, for Azure OpenAI clients, which add their own path

	cfg      ProxyConfig
	idp      *TokenServer
	srv      *httptest.Server
	requests atomic.Int64
	accepted atomic.Int64
	rejected atomic.Int64

	mu   sync.Mutex
	seen []Seen
}

// Seen is what the proxy saw of one request.
type Seen struct {
	Path          string
	Authorization string
	APIKey        string // the api-key header, as Azure OpenAI clients send it
	RequestID     string // the X-Request-Id header, to match a resend to its request
	// Header is a copy of all the request's headers, so that a test can
	// check that a secret reached the proxy under no name at all, and tell
	// an empty header from a missing one.
	Header   http.Header
	RawQuery string
	Valid    bool
	Status   int
}

// NewProxy starts a proxy on a loopback port that trusts idp.
func NewProxy(idp *TokenServer, cfg ProxyConfig) *Proxy {
	if cfg.StreamChunks <= 0 {
		cfg.StreamChunks = 3
	}
	p := &Proxy{cfg: cfg, idp: idp}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.Root = p.srv.URL
	p.URL = p.srv.URL + "/v1"
	return p
}

// Close shuts the proxy down.
func (p *Proxy) Close() { p.srv.Close() }

// Requests, Accepted and Rejected count requests: all, answered after a
// valid token, and refused with 401.
func (p *Proxy) Requests() int64 { return p.requests.Load() }
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }
func (p *Proxy) Rejected() int64 { return p.rejected.Load() }

// Seen returns what the proxy saw of every request, in order of arrival.
func (p *Proxy) Seen() []Seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Seen(nil), p.seen...)
}

func (p *Proxy) record(s Seen) {
	if p.cfg.DiscardSeen {
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, s)
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	seen := Seen{
		Path:          r.URL.Path,
		Authorization: auth,
		APIKey:        r.Header.Get("api-key"),
		RequestID:     r.Header.Get("X-Request-Id"),
		RawQuery:      r.URL.RawQuery,
	}
	if !p.cfg.DiscardSeen {
		seen.Header = r.Header.Clone()
	}
	seen.Valid = ok && p.idp.Valid(token)
	if !seen.Valid {
		p.rejected.Add(1)
		seen.Status = http.StatusUnauthorized
		p.record(seen)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		apiError(w, http.StatusUnauthorized, "invalid_token", "the bearer token is missing, expired or revoked")
		return
	}
	n := p.accepted.Add(1)
	if p.cfg.Fail != nil {
		if status := p.cfg.Fail(n); status != 0 {
			seen.Status = status
			p.record(seen)
			if status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "0")
			}
			apiError(w, status, "injected", "injected failure")
			return
		}
	}
	seen.Status = http.StatusOK
	p.record(seen)
	if p.cfg.Latency > 0 {
		select {
		case <-time.After(p.cfg.Latency):
		case <-r.Context().Done():
			return
		}
	}

	switch route(r.URL.Path) {
	case "/chat/completions":
		p.chat(w, r)
	case "/embeddings":
		p.embeddings(w, r)
	case "/models":
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "gpt-4o-mini", "object": "model", "created": 1700000000, "owned_by": "sandbox"},
		}})
	default:
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

// route maps a request path to the endpoint it names: the OpenAI form
// /v1/{endpoint} and the Azure OpenAI form
// /openai/deployments/{deployment}/{endpoint} give the same "/{endpoint}".
func route(path string) string {
	if rest, ok := strings.CutPrefix(path, "/openai/deployments/"); ok {
		_, endpoint, _ := strings.Cut(rest, "/")
		return "/" + endpoint
	}
	return strings.TrimPrefix(path, "/v1")
}

func (p *Proxy) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Content any `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "malformed JSON body")
		return
	}
	created := time.Now().Unix()
	if !req.Stream {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": "chatcmpl-sandbox", "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []any{map[string]any{
				"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "pong"},
			}},
			"usage": map[string]any{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	for i := range p.cfg.StreamChunks {
		if p.cfg.BeforeChunk != nil {
			p.cfg.BeforeChunk(r, i)
		}
		chunk := map[string]any{
			"id": "chatcmpl-sandbox", "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": fmt.Sprintf("chunk-%d ", i)}}},
		}
		b, _ := json.Marshal(chunk)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func (p *Proxy) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "malformed JSON body")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "model": req.Model,
		"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.1, 0.2, 0.3}}},
		"usage": map[string]any{"prompt_tokens": 1, "total_tokens": 1},
	})
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": code, "code": code}})
}
