package proxyauthtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jarcoal/httpmock"
)

// Model is the one model that [Upstream] lists at /v1/models. Requests may
// name any model; answers repeat the name they were given.
const Model = "proxyauthtest-model"

// Upstream is a fake OpenAI-compatible API at [BaseURL] that accepts a
// request only when it carries "Authorization: Bearer <token>" with a token
// that its [TokenEndpoint] issued and that is neither revoked nor expired by
// the fake's clock. Any other request gets 401 with an OpenAI-style error
// body (code "invalid_token") and a WWW-Authenticate challenge: for a
// refused token `Bearer realm="proxyauthtest", error="invalid_token"` and an
// error_description; when there is no bearer token, `Bearer
// realm="proxyauthtest"` without an error (RFC 6750 section 3.1).
//
// After the token it checks the path. It serves:
//
//   - POST /v1/chat/completions: the assistant answers with the text of the
//     last message, so that a test can tell its requests apart. With
//     "stream": true the answer is server-sent events: one
//     chat.completion.chunk per word (the first one carries the role), a
//     last chunk with finish_reason "stop", then "data: [DONE]".
//   - POST /v1/embeddings: one embedding, [0.1, 0.2, 0.3], per input (a
//     string or an array of strings).
//   - GET /v1/models: a list with [Model].
//
// Other paths get 404, other methods 405, a malformed body 400. Its methods
// are safe for concurrent use.
type Upstream struct {
	idp      *TokenEndpoint
	now      func() time.Time
	requests atomic.Int64
	accepted atomic.Int64
	rejected atomic.Int64
}

// Requests returns how many requests reached the upstream: each one is
// counted as accepted or rejected as well.
func (u *Upstream) Requests() int { return int(u.requests.Load()) }

// Accepted returns how many requests carried a valid token, whatever the
// answer to them was.
func (u *Upstream) Accepted() int { return int(u.accepted.Load()) }

// Rejected returns how many requests were answered 401.
func (u *Upstream) Rejected() int { return int(u.rejected.Load()) }

func (u *Upstream) respond(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		defer r.Body.Close()
	}
	token, isBearer := bearerToken(r.Header.Get("Authorization"))
	// Counted before answering, so that a caller who has its answer reads
	// final counts.
	if !isBearer || !u.idp.Valid(token) {
		u.rejected.Add(1)
		u.requests.Add(1)
		challenge := `Bearer realm="proxyauthtest"`
		if isBearer {
			challenge += `, error="invalid_token", error_description="the token is unknown, revoked or expired"`
		}
		resp := apiError(r, http.StatusUnauthorized, "invalid_token", "the bearer token is missing, unknown, revoked or expired")
		resp.Header.Set("WWW-Authenticate", challenge)
		return resp, nil
	}
	u.accepted.Add(1)
	u.requests.Add(1)

	var want string
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/embeddings":
		want = http.MethodPost
	case "/v1/models":
		want = http.MethodGet
	default:
		return apiError(r, http.StatusNotFound, "not_found", "no such endpoint"), nil
	}
	if r.Method != want {
		resp := apiError(r, http.StatusMethodNotAllowed, "invalid_request_error", "use "+want)
		resp.Header.Set("Allow", want)
		return resp, nil
	}
	switch r.URL.Path {
	case "/v1/chat/completions":
		return u.chat(r)
	case "/v1/embeddings":
		return u.embeddings(r)
	}
	return jsonResponse(r, http.StatusOK, map[string]any{"object": "list", "data": []any{
		map[string]any{"id": Model, "object": "model", "created": 1700000000, "owned_by": "proxyauthtest"},
	}}), nil
}

// bearerToken returns the token of an Authorization header with the Bearer
// scheme, whose name is case-insensitive (RFC 9110 section 11.1).
func bearerToken(auth string) (string, bool) {
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", false
	}
	return auth[len(prefix):], true
}

func (u *Upstream) chat(r *http.Request) (*http.Response, error) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if resp, err := decodeBody(r, &req); resp != nil || err != nil {
		return resp, err
	}
	if len(req.Messages) == 0 {
		return apiError(r, http.StatusBadRequest, "invalid_request_error", "messages must not be empty"), nil
	}
	reply, ok := messageText(req.Messages[len(req.Messages)-1].Content)
	if !ok {
		return apiError(r, http.StatusBadRequest, "invalid_request_error", "the last message has no text content"), nil
	}
	created := u.now().Unix()
	if !req.Stream {
		words := int64(len(strings.Fields(reply)))
		return jsonResponse(r, http.StatusOK, map[string]any{
			"id": "chatcmpl-proxyauthtest", "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []any{map[string]any{
				"index": 0, "finish_reason": "stop", "logprobs": nil,
				"message": map[string]any{"role": "assistant", "content": reply, "refusal": nil},
			}},
			"usage": map[string]any{"prompt_tokens": words, "completion_tokens": words, "total_tokens": 2 * words},
		}), nil
	}

	var b bytes.Buffer
	event := func(delta map[string]any, finish any) {
		chunk := map[string]any{
			"id": "chatcmpl-proxyauthtest", "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		}
		j, _ := json.Marshal(chunk)
		fmt.Fprintf(&b, "data: %s\n\n", j)
	}
	for i, piece := range strings.SplitAfter(reply, " ") {
		delta := map[string]any{"content": piece}
		if i == 0 {
			delta["role"] = "assistant"
		}
		event(delta, nil)
	}
	event(map[string]any{}, "stop")
	b.WriteString("data: [DONE]\n\n")
	resp := httpmock.NewBytesResponse(http.StatusOK, b.Bytes())
	resp.Header.Set("Content-Type", "text/event-stream")
	resp.Header.Set("Cache-Control", "no-cache")
	resp.Request = r
	return resp, nil
}

// messageText returns the text of a message's content: a string, or an
// array of content parts whose text parts are joined.
func messageText(content json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(content, &s); err == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(content, &parts); err != nil {
		return "", false
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, ""), len(texts) > 0
}

func (u *Upstream) embeddings(r *http.Request) (*http.Response, error) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if resp, err := decodeBody(r, &req); resp != nil || err != nil {
		return resp, err
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil || len(inputs) == 0 {
		return apiError(r, http.StatusBadRequest, "invalid_request_error", "input must be a string or a non-empty array of strings"), nil
	}
	data := make([]any, len(inputs))
	words := 0
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": []float64{0.1, 0.2, 0.3}}
		words += len(strings.Fields(in))
	}
	return jsonResponse(r, http.StatusOK, map[string]any{
		"object": "list", "model": req.Model, "data": data,
		"usage": map[string]any{"prompt_tokens": words, "total_tokens": words},
	}), nil
}

// decodeBody decodes r's JSON body into v. On failure it returns the 400
// answer, or the error of reading the body.
func decodeBody(r *http.Request, v any) (*http.Response, error) {
	if r.Body == nil {
		return apiError(r, http.StatusBadRequest, "invalid_request_error", "a JSON body is required"), nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apiError(r, http.StatusBadRequest, "invalid_request_error", "malformed JSON body"), nil
	}
	return nil, nil
}

func apiError(r *http.Request, status int, code, msg string) *http.Response {
	return jsonResponse(r, status, map[string]any{
		"error": map[string]any{"message": msg, "type": code, "param": nil, "code": code},
	})
}
