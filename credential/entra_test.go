package credential_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// fakeEntra is a local Microsoft Entra ID authority on an
// httptest.NewTLSServer, enough for azidentity's ClientSecretCredential:
// the tenant's OpenID configuration and its v2.0 token endpoint, which
// checks the client credentials and issues opaque tokens.
type fakeEntra struct {
	srv      *httptest.Server
	tenant   string
	clientID string
	secret   string

	// lifetime is the expires_in of issued tokens; refreshIn, when not
	// zero, is sent as refresh_in. Set them before the first request.
	lifetime  time.Duration
	refreshIn time.Duration

	// tokenRequests counts requests of the token endpoint, failed ones
	// included.
	tokenRequests atomic.Int64
	issued        atomic.Int64
}

const (
	entraTenant   = "00000000-0000-0000-0000-000000000001"
	entraClientID = "11111111-1111-1111-1111-111111111111"
	entraSecret   = "entra~Secret.0123456789"
)

// newFakeEntra starts a fake authority that issues tokens of the given
// lifetime; the server is closed when the test ends.
func newFakeEntra(t testing.TB, lifetime time.Duration) *fakeEntra {
	t.Helper()
	f := &fakeEntra{tenant: entraTenant, clientID: entraClientID, secret: entraSecret, lifetime: lifetime}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", f.openIDConfiguration)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.token)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEntra) authority() string { return f.srv.URL + "/" + f.tenant }

func (f *fakeEntra) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("tenant") != f.tenant {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 f.authority() + "/v2.0",
		"authorization_endpoint": f.authority() + "/oauth2/v2.0/authorize",
		"token_endpoint":         f.authority() + "/oauth2/v2.0/token",
	})
}

func (f *fakeEntra) token(w http.ResponseWriter, r *http.Request) {
	f.tokenRequests.Add(1)
	if err := r.ParseForm(); err != nil || r.PathValue("tenant") != f.tenant {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
	case r.PostForm.Get("client_id") != f.clientID || r.PostForm.Get("client_secret") != f.secret:
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"error":             "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided.",
			"error_codes":       []int{7000215},
		})
	case !slices.ContainsFunc(strings.Fields(r.PostForm.Get("scope")), func(s string) bool { return strings.HasSuffix(s, "/.default") }):
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_scope"})
	default:
		answer := map[string]any{
			"token_type":     "Bearer",
			"expires_in":     int(f.lifetime.Seconds()),
			"ext_expires_in": int(f.lifetime.Seconds()),
			"access_token":   fmt.Sprintf("entra-token-%d", f.issued.Add(1)),
		}
		if f.refreshIn > 0 {
			answer["refresh_in"] = int(f.refreshIn.Seconds())
		}
		writeJSON(w, http.StatusOK, answer)
	}
}

// credential returns azidentity's ClientSecretCredential for this
// authority, with the given secret.
func (f *fakeEntra) credential(t testing.TB, secret string) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(f.tenant, f.clientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: f.srv.URL},
			Transport: f.srv.Client(),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: got error %v; want none", err)
	}
	return cred
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
