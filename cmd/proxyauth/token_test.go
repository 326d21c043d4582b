package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil/aztest"
)

// TestToken checks the three output forms against the tokens the sandbox
// issued and the lifetime it gave them.
func TestToken(t *testing.T) {
	idp := newIdP(t)
	env := sandboxEnv(idp)

	r := runCommand(t, env, "token")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("token: exit status %d, stderr %q", r.code, r.stderr)
	}
	if toks := idp.Tokens(); len(toks) != 1 || r.stdout != toks[0]+"\n" {
		t.Errorf("token printed %q; want the issued token %q and a newline", r.stdout, toks)
	}

	r = runCommand(t, env, "token", "--header")
	if want := "Authorization: Bearer " + idp.Tokens()[1] + "\n"; r.code != exitOK || r.stdout != want {
		t.Errorf("token --header: exit status %d, printed %q; want %q", r.code, r.stdout, want)
	}

	before := time.Now()
	r = runCommand(t, env, "token", "--json")
	after := time.Now()
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != exitOK {
		t.Fatalf("token --json: exit status %d, printed %q (%v)", r.code, r.stdout, err)
	}
	if got["access_token"] != idp.Tokens()[2] || got["token_type"] != "Bearer" || len(got) != 3 {
		t.Errorf("token --json printed %v; want access_token %q, token_type Bearer, expires_on", got, idp.Tokens()[2])
	}
	// The sandbox issues tokens for an hour, as whole seconds.
	exp, _ := got["expires_on"].(float64)
	if lo, hi := before.Add(time.Hour-time.Second).Unix(), after.Add(time.Hour).Unix(); int64(exp) < lo || int64(exp) > hi {
		t.Errorf("expires_on %v; want between %d and %d (an hour after the request)", got["expires_on"], lo, hi)
	}
}

// TestTokenAzure checks --credential azure with a fake azidentity
// credential: the scope reaches it as azidentity wants it, and a token
// without an expiry prints expires_on 0.
func TestTokenAzure(t *testing.T) {
	var scopes [][]string
	exp := time.Unix(2000000000, 0)
	c := &command{azure: aztest.Cred(func(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
		scopes = append(scopes, o.Scopes)
		return azcore.AccessToken{Token: "az-token", ExpiresOn: exp}, nil
	})}
	r := runWith(t, c, map[string]string{"PROXYAUTH_SCOPE": "https://cognitiveservices.azure.com/.default"}, "token", "--credential", "azure", "--json")
	if r.code != exitOK {
		t.Fatalf("exit status %d; stderr %s", r.code, r.stderr)
	}
	if want := `{"access_token":"az-token","token_type":"Bearer","expires_on":2000000000}` + "\n"; r.stdout != want {
		t.Errorf("printed %q; want %q", r.stdout, want)
	}
	if len(scopes) != 1 || !slices.Equal(scopes[0], []string{"https://cognitiveservices.azure.com/.default"}) {
		t.Errorf("azidentity got scopes %q; want the one scope", scopes)
	}

	azureEnv := map[string]string{"PROXYAUTH_CREDENTIAL": "azure", "PROXYAUTH_SCOPE": "s"}
	c = &command{azure: aztest.Static(azcore.AccessToken{Token: "forever"})}
	r = runWith(t, c, azureEnv, "token", "--json")
	if want := `{"access_token":"forever","token_type":"Bearer","expires_on":0}` + "\n"; r.stdout != want {
		t.Errorf("a token without expiry: printed %q (exit status %d, %s); want %q", r.stdout, r.code, r.stderr, want)
	}

	// What the transport would refuse is not printed either.
	for _, tt := range []struct {
		tok  azcore.AccessToken
		want string
	}{
		{azcore.AccessToken{Token: "two words", ExpiresOn: exp}, "cannot go into an HTTP header"},
		{azcore.AccessToken{Token: "stale", ExpiresOn: time.Now().Add(-time.Minute)}, "a token that expired at"},
	} {
		r = runWith(t, &command{azure: aztest.Static(tt.tok)}, azureEnv, "token")
		if r.code != exitFailure || r.stdout != "" || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, tt.tok.Token) {
			t.Errorf("token %q: exit status %d, stdout %q, stderr %q; want %d, nothing, and %q without the token",
				tt.tok.Token, r.code, r.stdout, r.stderr, exitFailure, tt.want)
		}
	}
}

// TestTokenRefused checks that a refusal of the identity provider exits
// with status 1 and says why in its words, without the client secret, even
// when the provider echoes the secret back.
func TestTokenRefused(t *testing.T) {
	idp := newIdP(t)
	echo := sandbox.Faults()[2] // "503 Retry-After": echoes the request's Authorization and form
	if echo.Name != "503 Retry-After" {
		t.Fatalf("sandbox fault 2 is %q", echo.Name)
	}
	tests := []struct {
		name  string
		setup func()
		env   map[string]string
		want  []string
	}{
		{"wrong secret", func() {}, map[string]string{"PROXYAUTH_CLIENT_SECRET": "wrong-secret-not-to-show"},
			[]string{"no token", "401", "invalid_client", "client authentication failed"}},
		{"echoing 503", func() { idp.SetFault(echo.Handler) }, nil,
			[]string{"no token", "503", "temporarily_unavailable", "maintenance"}},
		{"invalid token", func() {
			idp.SetFault(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"access_token":"has space","token_type":"Bearer","expires_in":60}`))
			}))
		}, nil, []string{"access_token", "characters an Authorization header cannot carry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer idp.SetFault(nil)
			tt.setup()
			env := sandboxEnv(idp)
			for k, v := range tt.env {
				env[k] = v
			}
			r := runCommand(t, env, "token")
			if r.code != exitFailure || r.stdout != "" {
				t.Errorf("exit status %d, stdout %q; want %d and nothing", r.code, r.stdout, exitFailure)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not say %q", r.stderr, w)
				}
			}
			for _, secret := range []string{idp.ClientSecret(), env["PROXYAUTH_CLIENT_SECRET"], "has space"} {
				if strings.Contains(r.stderr, secret) {
					t.Errorf("stderr holds %q: %s", secret, r.stderr)
				}
			}
		})
	}
}
