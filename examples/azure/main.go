// Command azure sends one chat completion with the openai-go SDK to an
// OpenAI-compatible LLM proxy protected by Microsoft Entra ID, with a token
// from azidentity's DefaultAzureCredential: environment variables
// (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, ...), workload
// identity, managed identity, or a signed-in Azure CLI, whichever is there.
//
// It is configured by environment variables:
//
//	OPENAI_BASE_URL  the proxy's base URL, e.g. https://llm.example.com/v1
//	PROXYAUTH_SCOPE  the scope of the proxy's app registration, e.g. api://{app-id}/.default
//
// With either missing it names them and exits with status 2.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/credential/azuread"
	"github.com/proxyauth/proxyauth/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	// DefaultAzureCredential is created on the first token request, so
	// building it here costs nothing when variables are missing.
	code := run(ctx, os.Args[1:], os.Getenv, azuread.New(nil), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// required are the variables without which the example cannot run.
var required = []string{"OPENAI_BASE_URL", "PROXYAUTH_SCOPE"}

// run is main with its inputs and outputs passed in, so that a test can
// drive it with another credential than DefaultAzureCredential. It returns
// the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, cred credential.TokenCredential, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("azure", flag.ContinueOnError)
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
		fmt.Fprintf(stderr, "azure: missing environment variables: %s\n", strings.Join(missing, ", "))
		fmt.Fprintln(stderr, "azure: DefaultAzureCredential also needs one of: AZURE_TENANT_ID+AZURE_CLIENT_ID+AZURE_CLIENT_SECRET, workload or managed identity, or `az login`")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	// An own transport rather than http.DefaultTransport, closed on
	// return, so that nothing outlives run.
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	hc := transport.Wrap(&http.Client{Transport: base}, cred, getenv("PROXYAUTH_SCOPE"), nil)

	client := openai.NewClient(
		option.WithHTTPClient(hc),
		option.WithBaseURL(getenv("OPENAI_BASE_URL")),
	)
	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    *model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(*prompt)},
	})
	if err != nil {
		fmt.Fprintln(stderr, "azure:", err)
		return 1
	}
	if len(resp.Choices) == 0 {
		fmt.Fprintln(stderr, "azure: the answer has no choices")
		return 1
	}
	fmt.Fprintln(stdout, resp.Choices[0].Message.Content)
	return 0
}
