package proxyauthtest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/proxyauthtest"
	"github.com/proxyauth/proxyauth/transport"
)

// ask stands for the code under test: it asks a model through an
// OpenAI-compatible API, with whatever authenticated client it is given.
func ask(ctx context.Context, client *http.Client, baseURL, question string) (string, error) {
	c := openai.NewClient(
		option.WithHTTPClient(client),
		option.WithBaseURL(baseURL),
		option.WithAPIKey("unused"), // the transport replaces it with the token
	)
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT5_4Mini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)},
	})
	if err != nil {
		return "", err
	}
	return resp.Choices[0].Message.Content, nil
}

// newClient wires a test the way production code is wired, with the fake in
// place of the identity provider and the network.
func newClient(fake *proxyauthtest.Fake) *http.Client {
	cred, err := credential.NewOAuth2(fake.OAuth2Config())
	if err != nil {
		log.Fatal(err)
	}
	return transport.Wrap(fake.Client(), cred, "llm.invoke", nil)
}

// A test of code that calls chat completions through transport.Wrap, with
// the real openai-go client and no network.
func Example() {
	fake := proxyauthtest.New(nil)
	cred, err := credential.NewOAuth2(fake.OAuth2Config())
	if err != nil {
		fmt.Println(err)
		return
	}
	client := transport.Wrap(fake.Client(), cred, "llm.invoke", nil)

	answer, err := ask(context.Background(), client, proxyauthtest.BaseURL, "Hello from a test")
	if err != nil {
		fmt.Println(err)
		return
	}
	// The fake upstream answers with the question.
	fmt.Println(answer)
	fmt.Println("token requests:", fake.IdP.Requests())
	fmt.Println("upstream accepted:", fake.LLM.Accepted(), "rejected:", fake.LLM.Rejected())
	// Output:
	// Hello from a test
	// token requests: 1
	// upstream accepted: 1 rejected: 0
}

// A test that proves the code under test survives a revoked token: the
// upstream refuses it once, and the transport fetches one new token and
// resends the request.
func ExampleTokenEndpoint_Revoke() {
	fake := proxyauthtest.New(nil)
	client := newClient(fake)
	ctx := context.Background()
	if _, err := ask(ctx, client, proxyauthtest.BaseURL, "before"); err != nil {
		fmt.Println(err)
		return
	}

	fake.IdP.Revoke(fake.IdP.Tokens()[0].Value)

	answer, err := ask(ctx, client, proxyauthtest.BaseURL, "after")
	fmt.Println(answer, err)
	fmt.Println("tokens issued:", len(fake.IdP.Tokens()))
	fmt.Println("upstream accepted:", fake.LLM.Accepted(), "rejected:", fake.LLM.Rejected())
	// Output:
	// after <nil>
	// tokens issued: 2
	// upstream accepted: 2 rejected: 1
}

// A test of what the code under test sees while the identity provider is
// overloaded.
func ExampleTokenEndpoint_Fail() {
	fake := proxyauthtest.New(nil)
	client := newClient(fake)
	fake.IdP.Fail(proxyauthtest.Failure{Status: http.StatusServiceUnavailable, RetryAfter: 30 * time.Second})

	_, err := client.Get(proxyauthtest.BaseURL + "/models")
	var oe *credential.OAuth2Error
	if errors.As(err, &oe) {
		fmt.Println("token endpoint:", oe.StatusCode, oe.Code)
	}
	fmt.Println("upstream requests:", fake.LLM.Requests())
	// Output:
	// token endpoint: 503 temporarily_unavailable
	// upstream requests: 0
}

// Concurrent requests that find no token share one token request. Hold
// keeps that request waiting, with no real-time delay, until the test
// releases it.
func ExampleTokenEndpoint_Hold() {
	fake := proxyauthtest.New(nil)
	client := newClient(fake)
	fake.IdP.Hold()

	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 3 {
		wg.Go(func() {
			resp, err := client.Get(proxyauthtest.BaseURL + "/models")
			if err == nil {
				resp.Body.Close()
				ok.Add(1)
			}
		})
	}
	// The first request's token fetch is waiting at the endpoint.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fake.IdP.WaitHeld(ctx, 1); err != nil {
		fmt.Println("no token request arrived:", err)
	}
	fake.IdP.Release()
	wg.Wait()
	fmt.Println("answers:", ok.Load(), "token requests:", fake.IdP.Requests())
	// Output: answers: 3 token requests: 1
}

// A test of token expiry without waiting for it: the fake's clock moves
// past the token's expiry, the upstream refuses the token, and the
// transport gets a new one.
func ExampleOptions() {
	var now atomic.Int64 // the fake's clock, in Unix seconds
	now.Store(time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC).Unix())
	fake := proxyauthtest.New(&proxyauthtest.Options{
		Now:      func() time.Time { return time.Unix(now.Load(), 0) },
		Lifetime: 10 * time.Minute,
	})
	client := newClient(fake)
	ctx := context.Background()
	if _, err := ask(ctx, client, proxyauthtest.BaseURL, "first"); err != nil {
		fmt.Println(err)
		return
	}
	first := fake.IdP.Tokens()[0]
	fmt.Println("expires:", first.ExpiresOn.UTC())

	now.Add(int64((11 * time.Minute).Seconds()))
	fmt.Println("still valid:", fake.IdP.Valid(first.Value))
	answer, err := ask(ctx, client, proxyauthtest.BaseURL, "second")
	fmt.Println(answer, err, "- tokens issued:", len(fake.IdP.Tokens()))
	// Output:
	// expires: 2026-01-02 12:10:00 +0000 UTC
	// still valid: false
	// second <nil> - tokens issued: 2
}

// Streamed completions arrive one word per chunk.
func ExampleUpstream_streaming() {
	fake := proxyauthtest.New(nil)
	c := openai.NewClient(
		option.WithHTTPClient(newClient(fake)),
		option.WithBaseURL(proxyauthtest.BaseURL),
	)
	stream := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    proxyauthtest.Model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("one word at a time")},
	})
	defer stream.Close()
	var chunks []string
	for stream.Next() {
		if ch := stream.Current().Choices; len(ch) > 0 && ch[0].Delta.Content != "" {
			chunks = append(chunks, ch[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Join(chunks, "|"))
	// Output: one |word |at |a |time
}

// A scripted credential returns its steps in order, then an error.
func ExampleScript() {
	errDown := errors.New("identity provider down")
	script := proxyauthtest.NewScript(
		proxyauthtest.Step{Err: errDown},
		proxyauthtest.Step{Token: credential.AccessToken{Token: "scripted", ExpiresOn: time.Now().Add(time.Hour)}},
	)
	for range 3 {
		tok, err := script.GetToken(context.Background(), "llm.invoke")
		switch {
		case errors.Is(err, errDown):
			fmt.Println("the identity provider is down")
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Println("a token that expires in an hour:", time.Until(tok.ExpiresOn) > 59*time.Minute)
		}
	}
	fmt.Println("calls:", script.Calls())
	// Output:
	// the identity provider is down
	// a token that expires in an hour: true
	// proxyauthtest: script ended: call 3 of a script of 2 steps
	// calls: 3
}

// A test that the code under test reports a credential's failure, and
// sends nothing without a token.
func ExampleScript_transport() {
	fake := proxyauthtest.New(nil)
	errDown := errors.New("identity provider down")
	script := proxyauthtest.NewScript(proxyauthtest.Step{Err: errDown})
	client := transport.Wrap(fake.Client(), script, "llm.invoke", nil)

	_, err := client.Get(proxyauthtest.BaseURL + "/models")
	fmt.Println(errors.Is(err, errDown), script.Calls(), fake.LLM.Requests())
	// Output: true 1 0
}
