package main

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/goleak"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/credential/azuread"
	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// unusable counts the times the example asks it for a token: with
// variables missing, nothing may be fetched. It may be called on any
// goroutine, so the test checks the count after the run.
type unusable struct{ calls *atomic.Int64 }

func (u unusable) GetToken(context.Context, string) (credential.AccessToken, error) {
	u.calls.Add(1)
	return credential.AccessToken{}, context.Canceled
}

func TestRunMissingVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"none set", nil, required},
		{"no scope", map[string]string{"OPENAI_BASE_URL": "https://llm.example.com/v1"}, []string{"PROXYAUTH_SCOPE"}},
		{"no base URL", map[string]string{"PROXYAUTH_SCOPE": "api://x/.default"}, []string{"OPENAI_BASE_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var calls atomic.Int64
			if code := run(context.Background(), nil, envFrom(tt.env), unusable{&calls}, &stdout, &stderr); code != 2 {
				t.Errorf("exit status %d; want 2", code)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d token requests; want none with variables missing", n)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q; want nothing", stdout.String())
			}
			line, _, _ := strings.Cut(stderr.String(), "\n")
			for _, name := range required {
				if got, want := strings.Contains(line, name), slices.Contains(tt.want, name); got != want {
					t.Errorf("message %q names %s: %v; want %v", line, name, got, want)
				}
			}
		})
	}
}

// sandboxAzure is an azidentity-style credential (azcore.TokenCredential)
// that gets its tokens from the sandbox token endpoint, so that the example
// runs through azuread.Credential as it does with DefaultAzureCredential.
type sandboxAzure struct {
	oauth  *credential.OAuth2
	scopes chan []string
}

func (s sandboxAzure) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.scopes <- opts.Scopes
	tok, err := s.oauth.GetToken(ctx, strings.Join(opts.Scopes, " "))
	return azcore.AccessToken{Token: tok.Token, ExpiresOn: tok.ExpiresOn}, err
}

func TestRunAgainstSandbox(t *testing.T) {
	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{})
	defer idp.Close()
	proxy := sandbox.NewProxy(idp, sandbox.ProxyConfig{})
	defer proxy.Close()
	tokenBase := &http.Transport{}
	defer tokenBase.CloseIdleConnections()
	oauth, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID: idp.ClientID(), ClientSecret: idp.ClientSecret(), TokenURL: idp.URL,
		HTTPClient: &http.Client{Transport: tokenBase},
	})
	if err != nil {
		t.Fatal(err)
	}
	az := sandboxAzure{oauth: oauth, scopes: make(chan []string, 1)}
	env := map[string]string{"OPENAI_BASE_URL": proxy.URL, "PROXYAUTH_SCOPE": "api://llm-proxy/.default"}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), nil, envFrom(env), azuread.New(az), &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d; want 0; stderr: %s", code, stderr.String())
	}
	if got := stdout.String(); got != "pong\n" {
		t.Errorf("stdout %q; want %q", got, "pong\n")
	}
	if got, want := testutil.Recv(t, az.scopes, "the credential to be asked for a token"), []string{"api://llm-proxy/.default"}; !slices.Equal(got, want) {
		t.Errorf("scopes %q; want %q", got, want)
	}
	if seen := proxy.Seen(); len(seen) != 1 || !seen[0].Valid {
		t.Errorf("proxy saw %d requests (first valid: %v); want one with a valid token", len(seen), len(seen) > 0 && seen[0].Valid)
	}
}
