package proxyauthtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/proxyauthtest"
	"github.com/proxyauth/proxyauth/transport"
)

// issue gets a token from the fake's endpoint.
func issue(t *testing.T, fake *proxyauthtest.Fake) string {
	t.Helper()
	tok, err := newOAuth2(t, fake, credential.AuthStyleHeader).GetToken(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// llmRequest builds a request to the upstream with an Authorization header
// (none if auth is "").
func llmRequest(t *testing.T, method, path, auth, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, proxyauthtest.BaseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func TestUpstreamAuth(t *testing.T) {
	clock := testutil.NewClock()
	fake := proxyauthtest.New(&proxyauthtest.Options{Now: clock.Now, Lifetime: time.Minute})
	revoked, expired := issue(t, fake), issue(t, fake)
	fake.IdP.Revoke(revoked)
	fake.IdP.SetLifetime(time.Hour)
	good := issue(t, fake)
	clock.Advance(time.Minute) // expired lived a minute, good lives an hour

	const refused = `Bearer realm="proxyauthtest", error="invalid_token", error_description="the token is unknown, revoked or expired"`
	const missing = `Bearer realm="proxyauthtest"`
	tests := []struct {
		name      string
		auth      string
		status    int
		challenge string
	}{
		{"valid", "Bearer " + good, 200, ""},
		{"scheme in lower case", "bearer " + good, 200, ""},
		{"revoked", "Bearer " + revoked, 401, refused},
		{"expired", "Bearer " + expired, 401, refused},
		{"unknown", "Bearer at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401, refused},
		{"a prefix of a valid token", "Bearer " + good[:len(good)-1], 401, refused},
		{"no Authorization", "", 401, missing},
		{"Basic", "Basic " + good, 401, missing},
		{"Bearer without a token", "Bearer ", 401, missing},
	}
	accepted := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, fake, llmRequest(t, http.MethodGet, "/models", tt.auth, ""))
			if a.status != tt.status {
				t.Fatalf("status %d; want %d", a.status, tt.status)
			}
			if got := a.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q; want %q", got, tt.challenge)
			}
			if tt.status == 200 {
				accepted++
				return
			}
			e, _ := a.body["error"].(map[string]any)
			if e["code"] != "invalid_token" {
				t.Errorf("body %v; want an OpenAI error with code invalid_token", a.body)
			}
		})
	}
	if fake.LLM.Requests() != len(tests) || fake.LLM.Accepted() != accepted || fake.LLM.Rejected() != len(tests)-accepted {
		t.Errorf("Requests %d, Accepted %d, Rejected %d; want %d, %d, %d",
			fake.LLM.Requests(), fake.LLM.Accepted(), fake.LLM.Rejected(), len(tests), accepted, len(tests)-accepted)
	}
}

// sse splits a server-sent event stream into its data fields, by the
// format's own rules rather than an SDK's.
func sse(t *testing.T, body string) []string {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("the stream does not end with a blank line: %q", body)
	}
	var data []string
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		d, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(d, "\n") {
			t.Fatalf("event %q is not one data line", ev)
		}
		data = append(data, d)
	}
	return data
}

func TestUpstreamChatStream(t *testing.T) {
	clock := testutil.NewClock()
	fake := proxyauthtest.New(&proxyauthtest.Options{Now: clock.Now})
	auth := "Bearer " + issue(t, fake)
	resp, err := fake.Client().Do(llmRequest(t, http.MethodPost, "/chat/completions", auth,
		`{"model":"m1","stream":true,"messages":[{"role":"user","content":"first"},{"role":"user","content":"three word answer"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q; want 200, text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	data := sse(t, string(raw))
	if data[len(data)-1] != "[DONE]" {
		t.Fatalf("last event %q; want [DONE]", data[len(data)-1])
	}
	type chunk struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Created int64  `json:"created"`
		Choices []struct {
			Delta struct {
				Role    string  `json:"role"`
				Content *string `json:"content"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
	}
	var pieces []string
	var finishes []string
	for i, d := range data[:len(data)-1] {
		var c chunk
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if c.Object != "chat.completion.chunk" || c.Model != "m1" || c.Created != clock.Now().Unix() || len(c.Choices) != 1 {
			t.Fatalf("event %d: %+v; want a chunk of model m1, created by the fake's clock, with one choice", i, c)
		}
		ch := c.Choices[0]
		if (i == 0) != (ch.Delta.Role == "assistant") {
			t.Errorf("event %d has role %q; want assistant on the first only", i, ch.Delta.Role)
		}
		if ch.Delta.Content != nil {
			pieces = append(pieces, *ch.Delta.Content)
		}
		if ch.FinishReason != nil {
			finishes = append(finishes, fmt.Sprintf("%d %s", i, *ch.FinishReason))
		}
	}
	if got := fmt.Sprintf("%q", pieces); got != `["three " "word " "answer"]` {
		t.Errorf("content pieces %s; want one per word of the last message", got)
	}
	if got, want := fmt.Sprint(finishes), fmt.Sprintf("[%d stop]", len(data)-2); got != want {
		t.Errorf("finish reasons %s; want %s (the last chunk only)", got, want)
	}
}

func TestUpstreamRoutes(t *testing.T) {
	fake := proxyauthtest.New(nil)
	auth := "Bearer " + issue(t, fake)
	tests := []struct {
		name         string
		method, path string
		body         string
		status       int
		check        func(t *testing.T, body map[string]any)
	}{
		{"chat", "POST", "/chat/completions", `{"model":"m2","messages":[{"role":"user","content":"Hello there"}]}`, 200,
			func(t *testing.T, b map[string]any) {
				want := `map[choices:[map[finish_reason:stop index:0 logprobs:<nil> message:map[content:Hello there refusal:<nil> role:assistant]]] ` +
					`model:m2 object:chat.completion usage:map[completion_tokens:2 prompt_tokens:2 total_tokens:4]]`
				delete(b, "id")
				delete(b, "created")
				if got := fmt.Sprint(b); got != want {
					t.Errorf("got  %s\nwant %s", got, want)
				}
			}},
		{"chat, content parts", "POST", "/chat/completions",
			`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}`, 200,
			func(t *testing.T, b map[string]any) {
				if got := fmt.Sprint(b["choices"]); !strings.Contains(got, "content:a b ") {
					t.Errorf("choices %s; want the text parts joined, \"a b\"", got)
				}
			}},
		{"embeddings, one input", "POST", "/embeddings", `{"model":"e","input":"one two"}`, 200,
			func(t *testing.T, b map[string]any) {
				want := `map[data:[map[embedding:[0.1 0.2 0.3] index:0 object:embedding]] model:e object:list usage:map[prompt_tokens:2 total_tokens:2]]`
				if got := fmt.Sprint(b); got != want {
					t.Errorf("got  %s\nwant %s", got, want)
				}
			}},
		{"embeddings, three inputs", "POST", "/embeddings", `{"model":"e","input":["a","b","c"]}`, 200,
			func(t *testing.T, b map[string]any) {
				if d, _ := b["data"].([]any); len(d) != 3 || fmt.Sprint(d[2]) != "map[embedding:[0.1 0.2 0.3] index:2 object:embedding]" {
					t.Errorf("data %v; want three embeddings, indexed", b["data"])
				}
			}},
		{"models", "GET", "/models", "", 200,
			func(t *testing.T, b map[string]any) {
				if got := fmt.Sprint(b); got != "map[data:[map[created:1.7e+09 id:proxyauthtest-model object:model owned_by:proxyauthtest]] object:list]" {
					t.Errorf("got %s", got)
				}
			}},
		{"unknown path", "GET", "/files", "", 404, nil},
		{"outside /v1", "GET", "/../models", "", 404, nil},
		{"GET chat", "GET", "/chat/completions", "", 405, nil},
		{"POST models", "POST", "/models", "{}", 405, nil},
		{"chat, malformed JSON", "POST", "/chat/completions", `{"model":`, 400, nil},
		{"chat, no body", "POST", "/chat/completions", "", 400, nil},
		{"chat, no messages", "POST", "/chat/completions", `{"model":"m","messages":[]}`, 400, nil},
		{"chat, no text", "POST", "/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400, nil},
		{"embeddings, no input", "POST", "/embeddings", `{"model":"e"}`, 400, nil},
		{"embeddings, empty input", "POST", "/embeddings", `{"model":"e","input":[]}`, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, fake, llmRequest(t, tt.method, tt.path, auth, tt.body))
			if a.status != tt.status {
				t.Fatalf("status %d; want %d (body %v)", a.status, tt.status, a.body)
			}
			if tt.check != nil {
				tt.check(t, a.body)
				return
			}
			if e, _ := a.body["error"].(map[string]any); e["message"] == nil {
				t.Errorf("body %v; want an OpenAI error", a.body)
			}
			if tt.status == 405 && a.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if fake.LLM.Requests() != len(tests) || fake.LLM.Accepted() != len(tests) || fake.LLM.Rejected() != 0 {
		t.Errorf("Requests %d, Accepted %d, Rejected %d; want %d, %d, 0", fake.LLM.Requests(), fake.LLM.Accepted(), fake.LLM.Rejected(), len(tests), len(tests))
	}
}

// TestNoNetwork: nothing but the two fakes answers, and nothing is dialled.
func TestNoNetwork(t *testing.T) {
	fake := proxyauthtest.New(nil)
	for _, u := range []string{
		"https://example.com/",
		"http://" + strings.TrimPrefix(proxyauthtest.TokenURL, "https://"),
		"http://" + strings.TrimPrefix(proxyauthtest.BaseURL, "https://") + "/models",
		"https://127.0.0.1/v1/models",
		"https://llm.proxyauth.test.example.com/v1/models",
	} {
		resp, err := fake.Client().Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s: status %d; want an error", u, resp.StatusCode)
			continue
		}
		if !strings.Contains(err.Error(), "no responder found") {
			t.Errorf("GET %s: %v; want httpmock's no responder error", u, err)
		}
	}
	if fake.IdP.Requests() != 0 || fake.LLM.Requests() != 0 {
		t.Errorf("the fakes saw %d and %d requests; want none", fake.IdP.Requests(), fake.LLM.Requests())
	}
	// The port is the https default, so it is the same host.
	a := send(t, fake, llmRequest(t, http.MethodGet, "/models", "", ""))
	req, _ := http.NewRequest(http.MethodGet, "https://llm.proxyauth.test:443/v1/models", nil)
	b := send(t, fake, req)
	if a.status != 401 || b.status != 401 {
		t.Errorf("statuses %d, %d; want 401 from the upstream", a.status, b.status)
	}
}

func chatParams(q string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    proxyauthtest.Model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(q)},
	}
}

// TestOpenAIGo runs the real SDK through the transport against the fakes.
func TestOpenAIGo(t *testing.T) {
	fake := proxyauthtest.New(nil)
	cred, err := credential.NewOAuth2(fake.OAuth2Config())
	if err != nil {
		t.Fatal(err)
	}
	client := openai.NewClient(
		option.WithHTTPClient(transport.Wrap(fake.Client(), cred, "llm", nil)),
		option.WithBaseURL(proxyauthtest.BaseURL),
		option.WithAPIKey("sk-never-sent"),
		option.WithMaxRetries(0),
	)
	ctx := context.Background()

	chat, err := client.Chat.Completions.New(ctx, chatParams("ping"))
	if err != nil {
		t.Fatal(err)
	}
	if got := chat.Choices[0].Message.Content; got != "ping" {
		t.Errorf("chat: %q; want ping", got)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, chatParams("a streamed answer"))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if got := acc.Choices[0].Message.Content; got != "a streamed answer" || acc.Choices[0].FinishReason != "stop" {
		t.Errorf("stream: %q, finish %q; want %q, stop", got, acc.Choices[0].FinishReason, "a streamed answer")
	}

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: openai.EmbeddingModelTextEmbedding3Small,
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"x", "y"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 || fmt.Sprint(emb.Data[1].Embedding) != "[0.1 0.2 0.3]" {
		t.Errorf("embeddings %+v; want two", emb.Data)
	}

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != proxyauthtest.Model {
		t.Errorf("models %+v; want %s", models.Data, proxyauthtest.Model)
	}

	if fake.IdP.Requests() != 1 || fake.LLM.Accepted() != 4 || fake.LLM.Rejected() != 0 {
		t.Errorf("token requests %d, accepted %d, rejected %d; want 1, 4, 0", fake.IdP.Requests(), fake.LLM.Accepted(), fake.LLM.Rejected())
	}
}

// TestTransportHeals: after a revocation, and after the fake's clock has
// passed a token's expiry, one request gets 401, the transport fetches one
// new token and resends, and the caller sees only success.
func TestTransportHeals(t *testing.T) {
	for _, tt := range []struct {
		name  string
		spoil func(fake *proxyauthtest.Fake, clock *testutil.Clock)
	}{
		{"Revoke", func(f *proxyauthtest.Fake, _ *testutil.Clock) { f.IdP.Revoke(f.IdP.Tokens()[0].Value) }},
		{"RevokeAll", func(f *proxyauthtest.Fake, _ *testutil.Clock) { f.IdP.RevokeAll() }},
		{"expiry by the fake's clock", func(_ *proxyauthtest.Fake, c *testutil.Clock) { c.Advance(time.Hour) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock := testutil.NewClock()
			fake := proxyauthtest.New(&proxyauthtest.Options{Now: clock.Now})
			cred := newOAuth2(t, fake, credential.AuthStyleAuto)
			tr := transport.New(cred, "llm", &transport.Options{Base: fake.Transport()})
			client := &http.Client{Transport: tr}
			get := func() {
				t.Helper()
				resp, err := client.Get(proxyauthtest.BaseURL + "/models")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d; want 200", resp.StatusCode)
				}
			}
			get()
			tt.spoil(fake, clock)
			get()
			get()
			toks := fake.IdP.Tokens()
			if len(toks) != 2 || fake.IdP.Valid(toks[0].Value) || !fake.IdP.Valid(toks[1].Value) {
				t.Fatalf("%d tokens issued; want 2, the first no longer valid and the second valid", len(toks))
			}
			if fake.IdP.Requests() != 2 || fake.LLM.Requests() != 4 || fake.LLM.Accepted() != 3 || fake.LLM.Rejected() != 1 {
				t.Errorf("token requests %d; upstream requests %d, accepted %d, rejected %d; want 2; 4, 3, 1",
					fake.IdP.Requests(), fake.LLM.Requests(), fake.LLM.Accepted(), fake.LLM.Rejected())
			}
			if st := tr.Stats(); st != (transport.Stats{Fetches: 2, Retries: 1}) {
				t.Errorf("Stats %+v; want 2 fetches, 1 retry", st)
			}
		})
	}
}

// TestConcurrentUpstream sends requests with valid and revoked tokens into
// the upstream at the same moment, while tokens are being revoked.
func TestConcurrentUpstream(t *testing.T) {
	const n = 32
	fake := proxyauthtest.New(nil)
	toks := make([]string, n)
	for i := range toks {
		toks[i] = issue(t, fake)
	}
	for i := 0; i < n; i += 2 {
		fake.IdP.Revoke(toks[i])
	}
	// Every request is held until all n have been sent, so that they
	// reach the upstream together.
	arrived := testutil.NewBarrier(t, n)
	next := fake.Transport()
	client := &http.Client{Transport: testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		arrived.Arrive()
		return next.RoundTrip(r)
	})}
	statuses := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, proxyauthtest.BaseURL+"/chat/completions",
				strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+toks[i])
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			statuses[i] = resp.StatusCode
			resp.Body.Close()
		})
	}
	// Revocations of already refused tokens race with the requests and
	// change no answer.
	wg.Go(func() {
		for i := 0; i < n; i += 2 {
			fake.IdP.Revoke(toks[i])
		}
	})
	testutil.Wait(t, &wg, "the concurrent requests to return")
	arrived.Check(t, "requests")
	for i := range n {
		want := 200
		if i%2 == 0 {
			want = 401
		}
		if errs[i] != nil || statuses[i] != want {
			t.Errorf("request %d: status %d, err %v; want %d", i, statuses[i], errs[i], want)
		}
	}
	if fake.LLM.Requests() != n || fake.LLM.Accepted() != n/2 || fake.LLM.Rejected() != n/2 {
		t.Errorf("Requests %d, Accepted %d, Rejected %d; want %d, %d, %d", fake.LLM.Requests(), fake.LLM.Accepted(), fake.LLM.Rejected(), n, n/2, n/2)
	}
}
