package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRunMissingVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // the variables the message must name
	}{
		{"none set", nil, required},
		{"no base URL", map[string]string{
			"PROXYAUTH_TOKEN_URL":     "https://idp.example.com/token",
			"PROXYAUTH_CLIENT_ID":     "id",
			"PROXYAUTH_CLIENT_SECRET": "secret",
		}, []string{"OPENAI_BASE_URL"}},
		{"no client secret", map[string]string{
			"PROXYAUTH_TOKEN_URL": "https://idp.example.com/token",
			"PROXYAUTH_CLIENT_ID": "id",
			"OPENAI_BASE_URL":     "https://llm.example.com/v1",
		}, []string{"PROXYAUTH_CLIENT_SECRET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), nil, envFrom(tt.env), &stdout, &stderr); code != 2 {
				t.Errorf("exit status %d; want 2", code)
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

// TestRunAgainstSandbox runs the example end to end against the loopback
// token endpoint and proxy, as it would run against real ones.
func TestRunAgainstSandbox(t *testing.T) {
	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{})
	defer idp.Close()
	proxy := sandbox.NewProxy(idp, sandbox.ProxyConfig{})
	defer proxy.Close()
	env := map[string]string{
		"PROXYAUTH_TOKEN_URL":     idp.URL,
		"PROXYAUTH_CLIENT_ID":     idp.ClientID(),
		"PROXYAUTH_CLIENT_SECRET": idp.ClientSecret(),
		"PROXYAUTH_SCOPE":         "llm.invoke",
		"OPENAI_BASE_URL":         proxy.URL,
	}

	t.Run("ok", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), nil, envFrom(env), &stdout, &stderr); code != 0 {
			t.Fatalf("exit status %d; want 0; stderr: %s", code, stderr.String())
		}
		if got := stdout.String(); got != "pong\n" {
			t.Errorf("stdout %q; want %q", got, "pong\n")
		}
		if seen := proxy.Seen(); len(seen) != 1 || !seen[0].Valid {
			t.Errorf("proxy saw %d requests (first valid: %v); want one with a valid token", len(seen), len(seen) > 0 && seen[0].Valid)
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		bad := map[string]string{}
		for k, v := range env {
			bad[k] = v
		}
		bad["PROXYAUTH_CLIENT_SECRET"] = "not-the-secret"
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), nil, envFrom(bad), &stdout, &stderr); code != 1 {
			t.Fatalf("exit status %d; want 1", code)
		}
		if strings.Contains(stderr.String(), "not-the-secret") {
			t.Errorf("stderr shows the client secret: %s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "invalid_client") {
			t.Errorf("stderr %q; want the token endpoint's invalid_client", stderr.String())
		}
	})
}
