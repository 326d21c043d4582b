package proxyauth_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/transport"
)

// These tests drive the real SDK clients through proxyauth against
// sandbox.Proxy, which answers only requests that carry a token its
// sandbox.TokenServer issued and that is neither expired nor revoked. The
// token endpoint is talked to by credential.OAuth2, as in production.

const (
	scope = "api://llm-proxy/.default"
	// apiKey stands for a real key that an SDK was configured with. It must
	// never reach the proxy once proxyauth is in the path.
	apiKey = "sk-test-key-that-must-not-leave"
	// revokedMessage is the message of sandbox.Proxy's 401, which an SDK
	// shows only if the 401 reached it as the proxy sent it.
	revokedMessage = "the bearer token is missing, expired or revoked"
)

// env is one token endpoint, one proxy that trusts it, and HTTP clients
// that talk to the proxy with and without proxyauth.
type env struct {
	idp   *sandbox.TokenServer
	proxy *sandbox.Proxy
	auth  *http.Client // transport.Wrap over plain
	plain *http.Client // no proxyauth: what the SDK sends by itself
	tr    *transport.Transport
	// expires is when the last token fetched expires, as the transport
	// sees it (UnixNano).
	expires atomic.Int64
}

func newEnv(t *testing.T, idpCfg sandbox.TokenServerConfig, proxyCfg sandbox.ProxyConfig) *env {
	t.Helper()
	return newEnvWith(t, idpCfg, proxyCfg, nil)
}

// newEnvWith is newEnv with transport options (Base is ignored).
func newEnvWith(t *testing.T, idpCfg sandbox.TokenServerConfig, proxyCfg sandbox.ProxyConfig, opts *transport.Options) *env {
	t.Helper()
	idp := sandbox.NewTokenServer(idpCfg)
	proxy := sandbox.NewProxy(idp, proxyCfg)
	// Own transports, not http.DefaultTransport, so that each test can
	// close its idle connections and goleak sees no reader goroutines.
	tokenBase, apiBase := &http.Transport{}, &http.Transport{}
	t.Cleanup(func() {
		proxy.Close()
		idp.Close()
		tokenBase.CloseIdleConnections()
		apiBase.CloseIdleConnections()
	})
	oauth, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     idp.ClientID(),
		ClientSecret: idp.ClientSecret(),
		TokenURL:     idp.URL,
		HTTPClient:   &http.Client{Transport: tokenBase, Timeout: testutil.HangTimeout},
	})
	if err != nil {
		t.Fatalf("NewOAuth2: %v", err)
	}
	e := &env{idp: idp, proxy: proxy, plain: &http.Client{Transport: apiBase}}
	cred := credential.Func(func(ctx context.Context, scope string) (credential.AccessToken, error) {
		tok, err := oauth.GetToken(ctx, scope)
		if err == nil {
			e.expires.Store(tok.ExpiresOn.UnixNano())
		}
		return tok, err
	})
	e.auth = transport.Wrap(e.plain, cred, scope, opts)
	e.tr = e.auth.Transport.(*transport.Transport)
	return e
}

// streamedBody sends each request body on to next through an io.Pipe,
// without GetBody, as a proxy that forwards a body or a streaming upload
// does: the transport can send such a body only once.
type streamedBody struct{ next http.RoundTripper }

func (s streamedBody) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return s.next.RoundTrip(req)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, req.Body)
		req.Body.Close()
		pw.CloseWithError(err) // ends when the reader has all of it or is closed
	}()
	r := *req // a RoundTripper must not change the caller's request
	r.Body, r.GetBody = pr, nil
	return s.next.RoundTrip(&r)
}

// unreplayable returns an HTTP client like e.auth whose request bodies
// cannot be replayed.
func (e *env) unreplayable() *http.Client {
	return &http.Client{Transport: streamedBody{e.auth.Transport}}
}

// apiError returns the status and message of an SDK's error for an error
// answer, or 0 and "" if err is none.
func apiError(err error) (int, string) {
	var oe *openai.Error
	var ge *goopenai.APIError
	switch {
	case errors.As(err, &oe):
		return oe.StatusCode, oe.Message
	case errors.As(err, &ge):
		return ge.HTTPStatusCode, ge.Message
	}
	return 0, ""
}

// llm is the part of an SDK client that the tests exercise.
type llm interface {
	chat(ctx context.Context) (string, error)
	embed(ctx context.Context) (int, error)
	// stream calls each with every content delta as it arrives.
	stream(ctx context.Context, each func(content string)) error
}

// An sdk builds a real SDK client that sends through hc to the proxy of e.
type sdk struct {
	name   string
	client func(t *testing.T, e *env, hc *http.Client) llm
}

var sdks = []sdk{
	{"openai-go", func(t *testing.T, e *env, hc *http.Client) llm {
		return openaiGo{openai.NewClient(option.WithHTTPClient(hc), option.WithBaseURL(e.proxy.URL))}
	}},
	{"go-openai", func(t *testing.T, e *env, hc *http.Client) llm {
		cfg := goopenai.DefaultConfig("")
		cfg.BaseURL = e.proxy.URL
		cfg.HTTPClient = hc
		return goOpenAI{goopenai.NewClientWithConfig(cfg)}
	}},
}

type openaiGo struct{ c openai.Client }

var chatParams = openai.ChatCompletionNewParams{
	Model:    openai.ChatModelGPT5_4Mini,
	Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("ping")},
}

func (o openaiGo) chat(ctx context.Context) (string, error) {
	resp, err := o.c.Chat.Completions.New(ctx, chatParams)
	if err != nil {
		return "", err
	}
	return resp.Choices[0].Message.Content, nil
}

func (o openaiGo) embed(ctx context.Context) (int, error) {
	resp, err := o.c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: openai.EmbeddingModelTextEmbedding3Small,
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("ping")},
	})
	if err != nil {
		return 0, err
	}
	return len(resp.Data[0].Embedding), nil
}

func (o openaiGo) stream(ctx context.Context, each func(string)) error {
	s := o.c.Chat.Completions.NewStreaming(ctx, chatParams)
	defer s.Close()
	for s.Next() {
		if c := s.Current(); len(c.Choices) > 0 {
			each(c.Choices[0].Delta.Content)
		}
	}
	return s.Err()
}

type goOpenAI struct{ c *goopenai.Client }

var goChatRequest = goopenai.ChatCompletionRequest{
	Model:    goopenai.GPT4oMini,
	Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: "ping"}},
}

func (g goOpenAI) chat(ctx context.Context) (string, error) {
	resp, err := g.c.CreateChatCompletion(ctx, goChatRequest)
	if err != nil {
		return "", err
	}
	return resp.Choices[0].Message.Content, nil
}

func (g goOpenAI) embed(ctx context.Context) (int, error) {
	resp, err := g.c.CreateEmbeddings(ctx, goopenai.EmbeddingRequest{
		Model: goopenai.SmallEmbedding3,
		Input: []string{"ping"},
	})
	if err != nil {
		return 0, err
	}
	return len(resp.Data[0].Embedding), nil
}

func (g goOpenAI) stream(ctx context.Context, each func(string)) error {
	s, err := g.c.CreateChatCompletionStream(ctx, goChatRequest)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(r.Choices) > 0 {
			each(r.Choices[0].Delta.Content)
		}
	}
}

// op is one kind of SDK call, checked for the sandbox's fixed answer.
type op struct {
	name string
	call func(ctx context.Context, c llm) error
}

var ops = []op{
	{"chat", func(ctx context.Context, c llm) error {
		got, err := c.chat(ctx)
		if err == nil && got != "pong" {
			err = errors.New("chat answer " + got + "; want pong")
		}
		return err
	}},
	{"embeddings", func(ctx context.Context, c llm) error {
		n, err := c.embed(ctx)
		if err == nil && n != 3 {
			err = errors.New("embedding of wrong length")
		}
		return err
	}},
	{"stream", func(ctx context.Context, c llm) error {
		var got strings.Builder
		err := c.stream(ctx, func(s string) { got.WriteString(s) })
		if err == nil && got.String() != "chunk-0 chunk-1 chunk-2 " {
			err = errors.New("streamed " + got.String() + "; want chunk-0 chunk-1 chunk-2 ")
		}
		return err
	}},
}

// callCtx bounds one SDK call, so that a hang fails the test; nothing is
// asserted about how long a call takes.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testutil.HangTimeout)
	t.Cleanup(cancel)
	return ctx
}

func bearer(s sandbox.Seen) string { return strings.TrimPrefix(s.Authorization, "Bearer ") }

// checkSeen fails t unless every request that reached the proxy was
// refused only for its token and every other one carried a token that was
// valid when it arrived, and unless the transport resent exactly the
// requests that were refused.
func checkSeen(t *testing.T, e *env) []sandbox.Seen {
	t.Helper()
	seen := e.proxy.Seen()
	refused := 0
	for i, s := range seen {
		switch {
		case s.Status == http.StatusUnauthorized:
			refused++
		case !s.Valid:
			t.Errorf("request %d (%s) carried no valid token; status %d", i, s.Path, s.Status)
		case !e.idp.Known(bearer(s)):
			t.Errorf("request %d (%s) carried a token the token server did not issue", i, s.Path)
		}
	}
	if got := e.tr.Stats().Retries; got != int64(refused) {
		t.Errorf("Stats().Retries = %d; want %d, one per 401", got, refused)
	}
	return seen
}

func TestSDKCalls(t *testing.T) {
	for _, s := range sdks {
		for _, o := range ops {
			t.Run(s.name+"/"+o.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{})
				c := s.client(t, e, e.auth)
				for range 3 {
					if err := o.call(callCtx(t), c); err != nil {
						t.Fatalf("%s: %v", o.name, err)
					}
				}
				if seen := checkSeen(t, e); len(seen) != 3 {
					t.Errorf("proxy saw %d requests; want 3", len(seen))
				}
				if got := e.tr.Stats().Fetches; got != 1 {
					t.Errorf("Stats().Fetches = %d; want 1", got)
				}
			})
		}
	}
}

// TestSDKStreaming proves that an SSE response streams through the
// transport: the proxy writes chunk i+1 only after the client has received
// chunk i, so a buffering transport would deadlock and the proxy would give
// up waiting.
func TestSDKStreaming(t *testing.T) {
	const chunks = 5
	for _, s := range sdks {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			received := make(chan int) // the index of the chunk the client just got
			var held atomic.Int64      // chunks the proxy wrote without the client having the previous one
			e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{
				StreamChunks: chunks,
				BeforeChunk: func(r *http.Request, i int) {
					if i == 0 {
						return
					}
					select {
					case got := <-received:
						if got != i-1 {
							held.Add(1)
						}
					case <-time.After(testutil.HangTimeout):
						held.Add(1)
					case <-r.Context().Done():
						held.Add(1)
					}
				},
			})
			var got []string
			err := s.client(t, e, e.auth).stream(callCtx(t), func(content string) {
				i := len(got)
				got = append(got, content)
				if i == chunks-1 {
					return // the proxy waits for no receipt of the last chunk
				}
				select {
				case received <- i:
				case <-time.After(testutil.HangTimeout):
					t.Errorf("the proxy did not take the receipt of chunk %d", i)
				}
			})
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			want := []string{"chunk-0 ", "chunk-1 ", "chunk-2 ", "chunk-3 ", "chunk-4 "}
			if !slices.Equal(got, want) {
				t.Errorf("chunks %q; want %q", got, want)
			}
			if n := held.Load(); n != 0 {
				t.Errorf("%d chunks were written before the client had the one before; want 0 (the response was buffered)", n)
			}
			checkSeen(t, e)
		})
	}
}

// TestSDKRetries checks that the SDK's own retries compose with the
// statuses lists the status of each request the proxy saw.
func statuses(seen []sandbox.Seen) []int {
	var got []int
	for _, s := range seen {
		got = append(got, s.Status)
	}
	return got
}

// transport: every attempt of the SDK reaches the model with a valid token.
func TestSDKRetries(t *testing.T) {
	t.Run("openai-go retries 500 and 429", func(t *testing.T) {
		t.Parallel()
		failAt := map[int64]int{1: http.StatusInternalServerError, 2: http.StatusTooManyRequests}
		e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{
			Fail: func(n int64) int { return failAt[n] },
		})
		if err := ops[0].call(callCtx(t), sdks[0].client(t, e, e.auth)); err != nil {
			t.Fatalf("chat: %v", err)
		}
		got := statuses(checkSeen(t, e))
		if want := []int{500, 429, 200}; !slices.Equal(got, want) {
			t.Errorf("statuses %v; want %v", got, want)
		}
		if st := e.tr.Stats(); st.Fetches != 1 || st.Retries != 0 {
			t.Errorf("Stats() = %+v; want 1 fetch, 0 retries", st)
		}
	})

	t.Run("openai-go retries a 500 after which the token is revoked", func(t *testing.T) {
		t.Parallel()
		var e *env
		e = newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{
			Fail: func(n int64) int {
				if n == 1 {
					e.idp.RevokeAll() // the SDK's next attempt carries a revoked token
					return http.StatusInternalServerError
				}
				return 0
			},
		})
		if err := ops[0].call(callCtx(t), sdks[0].client(t, e, e.auth)); err != nil {
			t.Fatalf("chat: %v", err)
		}
		got := statuses(checkSeen(t, e))
		if want := []int{500, 401, 200}; !slices.Equal(got, want) {
			t.Errorf("statuses %v; want %v", got, want)
		}
		if st := e.tr.Stats(); st.Fetches != 2 || st.Retries != 1 {
			t.Errorf("Stats() = %+v; want 2 fetches, 1 retry", st)
		}
	})

	// go-openai has no retries of its own: the 500 reaches the caller, and
	// the transport, which resends only on 401, does not resend it either.
	t.Run("go-openai returns a 500", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{
			Fail: func(n int64) int { return http.StatusInternalServerError },
		})
		err := ops[0].call(callCtx(t), sdks[1].client(t, e, e.auth))
		var apiErr *goopenai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusInternalServerError {
			t.Fatalf("chat error %v; want an *APIError with status 500", err)
		}
		if seen := checkSeen(t, e); len(seen) != 1 {
			t.Errorf("proxy saw %d requests; want 1", len(seen))
		}
	})
}

// TestTokenRenewal checks that a token that stops being valid between two
// calls is replaced without the SDK caller noticing.
func TestTokenRenewal(t *testing.T) {
	tests := []struct {
		name string
		// lifetime of the tokens; zero: the sandbox's hour.
		lifetime time.Duration
		// invalidate makes tok, the token of the first call, invalid.
		invalidate func(t *testing.T, e *env, clock *testutil.Clock, tok string)
		// resends is how many 401s the transport must heal.
		resends int64
	}{
		{
			// The token runs out by the real clock, which the transport
			// uses, while the server, on its own clock, still takes it;
			// then the server's clock catches up. The second call must get
			// a new token before it is sent, not after a 401. (The only
			// real-time window: the 2 s between the credential reading the
			// token's lifetime and the cache checking it is unexpired.)
			name:     "expired",
			lifetime: 2 * time.Second,
			invalidate: func(t *testing.T, e *env, clock *testutil.Clock, tok string) {
				expires := time.Unix(0, e.expires.Load())
				testutil.Eventually(t, "the first token to expire by the real clock", func() bool { return time.Now().After(expires) })
				clock.Advance(time.Hour)
			},
			resends: 0,
		},
		{
			// The token server's clock runs ahead: it holds the token
			// expired while the transport still trusts it.
			name: "expired early by the server's clock",
			invalidate: func(t *testing.T, e *env, clock *testutil.Clock, tok string) {
				clock.Advance(time.Hour)
			},
			resends: 1,
		},
		{
			name:       "revoked",
			invalidate: func(t *testing.T, e *env, _ *testutil.Clock, tok string) { e.idp.Revoke(tok) },
			resends:    1,
		},
		{
			name:       "all revoked",
			invalidate: func(t *testing.T, e *env, _ *testutil.Clock, _ string) { e.idp.RevokeAll() },
			resends:    1,
		},
	}
	for _, s := range sdks {
		for _, tt := range tests {
			t.Run(s.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				clock := testutil.NewClock()
				e := newEnv(t, sandbox.TokenServerConfig{Now: clock.Now, Lifetime: tt.lifetime}, sandbox.ProxyConfig{})
				c := s.client(t, e, e.auth)
				if err := ops[0].call(callCtx(t), c); err != nil {
					t.Fatalf("first chat: %v", err)
				}
				first := bearer(e.proxy.Seen()[0])
				tt.invalidate(t, e, clock, first)
				if e.idp.Valid(first) {
					t.Fatal("the first token is still valid")
				}
				if err := ops[0].call(callCtx(t), c); err != nil {
					t.Fatalf("second chat: %v", err)
				}
				seen := checkSeen(t, e)
				if last := bearer(seen[len(seen)-1]); last == first {
					t.Error("the second call was answered with the first token")
				}
				st := e.tr.Stats()
				if st.Retries != tt.resends {
					t.Errorf("Stats().Retries = %d; want %d", st.Retries, tt.resends)
				}
				if st.Fetches != 2 {
					t.Errorf("Stats().Fetches = %d; want 2", st.Fetches)
				}
			})
		}
	}
}

// TestRevokedBeforeEachOperation checks the one resend after a 401 for
// every kind of call, including a streamed one, whose request body the
// transport must replay.
func TestRevokedBeforeEachOperation(t *testing.T) {
	for _, s := range sdks {
		for _, o := range ops {
			t.Run(s.name+"/"+o.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{})
				c := s.client(t, e, e.auth)
				if err := ops[0].call(callCtx(t), c); err != nil {
					t.Fatalf("first chat: %v", err)
				}
				e.idp.RevokeAll()
				if err := o.call(callCtx(t), c); err != nil {
					t.Fatalf("%s after revocation: %v", o.name, err)
				}
				checkSeen(t, e)
				if st := e.tr.Stats(); st.Retries != 1 || st.Fetches != 2 {
					t.Errorf("Stats() = %+v; want 2 fetches, 1 retry", st)
				}
			})
		}
	}
}

// TestRevokedUnreplayable checks rule 5 for requests whose body cannot be
// resent: after a revocation the SDK gets the proxy's 401 as it was, but
// the refused token is dropped, so that the next call, whose body cannot
// be resent either, goes out with a new token: exactly one more fetch, no
// resend.
func TestRevokedUnreplayable(t *testing.T) {
	for _, s := range sdks {
		for _, o := range ops {
			t.Run(s.name+"/"+o.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{})
				if err := ops[0].call(callCtx(t), s.client(t, e, e.auth)); err != nil {
					t.Fatalf("first chat: %v", err)
				}
				first := bearer(e.proxy.Seen()[0])
				e.idp.RevokeAll()

				c := s.client(t, e, e.unreplayable())
				err := o.call(callCtx(t), c)
				if status, msg := apiError(err); status != http.StatusUnauthorized || msg != revokedMessage {
					t.Fatalf("%s after the revocation: %v; want the proxy's 401 (%q)", o.name, err, revokedMessage)
				}
				if st := e.tr.Stats(); st.Fetches != 1 || st.Retries != 0 {
					t.Fatalf("Stats() after the 401 = %+v; want 1 fetch, 0 retries", st)
				}
				if err := o.call(callCtx(t), c); err != nil {
					t.Fatalf("next %s: %v", o.name, err)
				}
				if st := e.tr.Stats(); st.Fetches != 2 || st.Retries != 0 || e.idp.Issued() != 2 {
					t.Errorf("Stats() = %+v, tokens issued %d; want 2 fetches, 0 retries, 2 tokens", st, e.idp.Issued())
				}
				seen := e.proxy.Seen()
				if got, want := statuses(seen), []int{200, 401, 200}; !slices.Equal(got, want) {
					t.Fatalf("statuses %v; want %v", got, want)
				}
				if last := bearer(seen[2]); last == first || !seen[2].Valid {
					t.Error("the call after the 401 did not carry a new, valid token")
				}
			})
		}
	}
}

// holdsWithin returns how many refusal holds, of 1 s doubling to 30 s
// (rule 5), can have ended within d of the first one's start.
func holdsWithin(d time.Duration) int {
	n, hold := 0, time.Second
	for sum := hold; sum <= d; sum += hold {
		n++
		hold = min(2*hold, 30*time.Second)
	}
	return n
}

// TestServerRefusingEveryTokenUnreplayable checks that a proxy that refuses
// every token, new ones included (here the token server revokes each token
// as it issues it), costs calls whose bodies cannot be resent one token
// request per refusal hold, not one per call. The transport runs on the
// real clock: every fetched token but the first starts a hold, and no more
// holds can have ended than fit in the time the calls took.
func TestServerRefusingEveryTokenUnreplayable(t *testing.T) {
	const calls = 30
	for _, s := range sdks {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			logs, logger := testutil.NewLogs()
			var e *env
			e = newEnvWith(t, sandbox.TokenServerConfig{OnEvent: func(ev sandbox.Event) {
				if ev.Kind == "issued" {
					e.idp.RevokeAll()
				}
			}}, sandbox.ProxyConfig{}, &transport.Options{Logger: logger})
			c := s.client(t, e, e.unreplayable())
			start := time.Now()
			for i := range calls {
				if status, msg := apiError(ops[0].call(callCtx(t), c)); status != http.StatusUnauthorized || msg != revokedMessage {
					t.Fatalf("call %d: status %d %q; want the proxy's 401", i, status, msg)
				}
			}
			took := time.Since(start)
			st, holds := e.tr.Stats(), len(logs.Events("refusal_hold"))
			if st.Fetches != int64(1+holds) {
				t.Errorf("%d fetches, %d holds; want one fetch more than holds: every token after the first starts one", st.Fetches, holds)
			}
			if most := int64(2 + holdsWithin(took)); st.Fetches > most {
				t.Errorf("%d calls in %v cost %d fetches; want at most %d, one per hold", calls, took, st.Fetches, most)
			}
			if st.Retries != 0 || e.proxy.Requests() != calls {
				t.Errorf("Retries %d, proxy requests %d; want 0, %d", st.Retries, e.proxy.Requests(), calls)
			}
		})
	}
}

// TestAPIKeyReplaced checks that an API key configured in an SDK is
// replaced by the bearer token and reaches the proxy under no header. Each
// case first sends without proxyauth, to prove that the SDK does put the
// key on the wire, so that the test cannot pass vacuously.
func TestAPIKeyReplaced(t *testing.T) {
	tests := []struct {
		name   string
		client func(t *testing.T, e *env, hc *http.Client) llm
	}{
		{"openai-go option.WithAPIKey", func(t *testing.T, e *env, hc *http.Client) llm {
			return openaiGo{openai.NewClient(option.WithHTTPClient(hc), option.WithBaseURL(e.proxy.URL), option.WithAPIKey(apiKey))}
		}},
		{"openai-go OPENAI_API_KEY", func(t *testing.T, e *env, hc *http.Client) llm {
			t.Setenv("OPENAI_API_KEY", apiKey)
			return openaiGo{openai.NewClient(option.WithHTTPClient(hc), option.WithBaseURL(e.proxy.URL))}
		}},
		{"go-openai DefaultConfig", func(t *testing.T, e *env, hc *http.Client) llm {
			cfg := goopenai.DefaultConfig(apiKey)
			cfg.BaseURL = e.proxy.URL
			cfg.HTTPClient = hc
			return goOpenAI{goopenai.NewClientWithConfig(cfg)}
		}},
		{"go-openai DefaultAzureConfig with APITypeAzureAD", func(t *testing.T, e *env, hc *http.Client) llm {
			cfg := goopenai.DefaultAzureConfig(apiKey, e.proxy.Root)
			cfg.APIType = goopenai.APITypeAzureAD
			cfg.HTTPClient = hc
			return goOpenAI{goopenai.NewClientWithConfig(cfg)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{})

			_, err := tt.client(t, e, e.plain).chat(callCtx(t))
			if err == nil {
				t.Fatal("without proxyauth the proxy accepted the API key")
			}
			if got, want := e.proxy.Seen()[0].Authorization, "Bearer "+apiKey; got != want {
				t.Fatalf("without proxyauth the SDK sent Authorization %q; want %q", got, want)
			}
			before := len(e.proxy.Seen())

			c := tt.client(t, e, e.auth)
			for _, o := range ops {
				if err := o.call(callCtx(t), c); err != nil {
					t.Fatalf("%s: %v", o.name, err)
				}
			}
			seen := e.proxy.Seen()[before:]
			if len(seen) != len(ops) {
				t.Errorf("proxy saw %d requests; want %d", len(seen), len(ops))
			}
			for i, s := range seen {
				if !s.Valid {
					t.Errorf("request %d carried no valid token", i)
				}
				for name, values := range s.Header {
					for _, v := range values {
						if strings.Contains(v, apiKey) {
							t.Errorf("request %d: the API key reached the proxy in header %s", i, name)
						}
					}
				}
				if strings.Contains(s.RawQuery, apiKey) {
					t.Errorf("request %d: the API key reached the proxy in the query", i)
				}
			}
		})
	}
}

// TestGoOpenAIAzure pins what go-openai's Azure configurations send through
// the transport. APITypeAzureAD sends no api-key header: the bearer token is
// the only credential. APITypeAzure always sets an api-key header, empty
// when no key is configured; the transport adds the bearer token and leaves
// api-key as the SDK set it, so a configured key does reach the upstream
// (which some gateways want: Azure API Management takes its subscription
// key in api-key in front of Azure OpenAI).
func TestGoOpenAIAzure(t *testing.T) {
	tests := []struct {
		name    string
		apiType goopenai.APIType
		key     string
		want    []string // the api-key header values the proxy sees; nil: none
	}{
		{"APITypeAzureAD without key", goopenai.APITypeAzureAD, "", nil},
		{"APITypeAzure with key", goopenai.APITypeAzure, "azure-key", []string{"azure-key"}},
		{"APITypeAzure without key", goopenai.APITypeAzure, "", []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{})
			cfg := goopenai.DefaultAzureConfig(tt.key, e.proxy.Root)
			cfg.APIType = tt.apiType
			cfg.HTTPClient = e.auth
			c := goOpenAI{goopenai.NewClientWithConfig(cfg)}
			for _, o := range ops {
				if err := o.call(callCtx(t), c); err != nil {
					t.Fatalf("%s: %v", o.name, err)
				}
			}
			wantPaths := []string{
				"/openai/deployments/gpt-4o-mini/chat/completions",
				"/openai/deployments/text-embedding-3-small/embeddings",
				"/openai/deployments/gpt-4o-mini/chat/completions",
			}
			for i, s := range checkSeen(t, e) {
				if s.Path != wantPaths[i] || s.RawQuery != "api-version="+cfg.APIVersion {
					t.Errorf("request %d went to %s?%s; want %s?api-version=%s", i, s.Path, s.RawQuery, wantPaths[i], cfg.APIVersion)
				}
				if got, ok := s.Header["Api-Key"]; !slices.Equal(got, tt.want) || ok != (tt.want != nil) {
					t.Errorf("request %d: api-key header %q (present %v); want %q (present %v)", i, got, ok, tt.want, tt.want != nil)
				}
			}
		})
	}
}

// TestNoToken checks that when no token can be had, nothing reaches the
// proxy and the SDK caller gets an error from which the token endpoint's
// answer can be read with errors.As, after whatever retries the SDK makes.
func TestNoToken(t *testing.T) {
	for _, s := range sdks {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sandbox.TokenServerConfig{}, sandbox.ProxyConfig{})
			e.idp.SetDown(http.StatusServiceUnavailable)
			_, err := s.client(t, e, e.auth).chat(callCtx(t))
			var oe *credential.OAuth2Error
			if !errors.As(err, &oe) || oe.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("chat error %v; want one that wraps an *OAuth2Error with status 503", err)
			}
			if n := e.proxy.Requests(); n != 0 {
				t.Errorf("the proxy got %d requests; want 0", n)
			}
		})
	}
}
