// Command openai sends one chat completion with the openai-go SDK to an
// OpenAI-compatible LLM proxy that demands a bearer token, and gets that token
// with the OAuth2 client credentials grant (Okta, Auth0, Keycloak, Microsoft
// Entra ID, ...).
//
// It is configured by environment variables:
//
//	PROXYAUTH_TOKEN_URL      the token endpoint, e.g. https://login.example.com/oauth2/default/v1/token
//	PROXYAUTH_CLIENT_ID      the client ID
//	PROXYAUTH_CLIENT_SECRET  the client secret
//	PROXYAUTH_SCOPE          the scope to ask for (optional), e.g. api://{app-id}/.default
//	PROXYAUTH_AUDIENCE       an audience form field (optional; Auth0 wants one)
//	OPENAI_BASE_URL          the proxy's base URL, e.g. https://llm.example.com/v1
//
// With any required variable missing it names them and exits with status 2.
// An OPENAI_API_KEY in the environment is harmless: the SDK puts it in the
// Authorization header and proxyauth replaces it with the token.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// required are the variables without which the example cannot run.
var required = []string{
	"PROXYAUTH_TOKEN_URL",
	"PROXYAUTH_CLIENT_ID",
	"PROXYAUTH_CLIENT_SECRET",
	"OPENAI_BASE_URL",
}

// run is main with its inputs and outputs passed in, so that a test can
// drive it. It returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("openai", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", openai.ChatModelGPT5_4Mini, "the model (or deployment) to ask")
	prompt := fs.String("prompt", "Say hello in five words.", "the user message")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound for the whole run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var missing []string
	for _, name := range required {
		if getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "openai: missing environment variables: %s\n", strings.Join(missing, ", "))
		fmt.Fprintln(stderr, "openai: optional: PROXYAUTH_SCOPE, PROXYAUTH_AUDIENCE")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	// Own transports rather than http.DefaultTransport, closed on return,
	// so that nothing outlives run.
	tokenBase := http.DefaultTransport.(*http.Transport).Clone()
	apiBase := http.DefaultTransport.(*http.Transport).Clone()
	defer tokenBase.CloseIdleConnections()
	defer apiBase.CloseIdleConnections()

	var params url.Values
	if aud := getenv("PROXYAUTH_AUDIENCE"); aud != "" {
		params = url.Values{"audience": {aud}}
	}
	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:       getenv("PROXYAUTH_CLIENT_ID"),
		ClientSecret:   getenv("PROXYAUTH_CLIENT_SECRET"),
		TokenURL:       getenv("PROXYAUTH_TOKEN_URL"),
		EndpointParams: params,
		HTTPClient:     &http.Client{Transport: tokenBase, Timeout: 30 * time.Second},
	})
	if err != nil {
		fmt.Fprintln(stderr, "openai:", err)
		return 2
	}
	hc := transport.Wrap(&http.Client{Transport: apiBase}, cred, getenv("PROXYAUTH_SCOPE"), nil)

	client := openai.NewClient(
		option.WithHTTPClient(hc),
		option.WithBaseURL(getenv("OPENAI_BASE_URL")),
	)
	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    *model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(*prompt)},
	})
	if err != nil {
		fmt.Fprintln(stderr, "openai:", err)
		return 1
	}
	if len(resp.Choices) == 0 {
		fmt.Fprintln(stderr, "openai: the answer has no choices")
		return 1
	}
	fmt.Fprintln(stdout, resp.Choices[0].Message.Content)
	return 0
}
