package azuread_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/jarcoal/httpmock"
)

// fakeEntra is a Microsoft Entra ID authority answered in process by an
// httpmock transport, enough for azidentity's ClientSecretCredential: the
// tenant's OpenID configuration and its v2.0 token endpoint, which checks
// the client credentials and issues opaque tokens. azidentity sends every
// request through the azcore pipeline's Transport, so no socket is needed.
type fakeEntra struct {
	mock     *httpmock.MockTransport
	host     string
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

	// beforeToken, when set, is called with the number of each token
	// request before it is answered; it may hold the request. Set it
	// before the first request.
	beforeToken func(n int64)

	// throttle, when set, is asked with the number of each token request;
	// a header it returns makes the answer a 429 with that header, as
	// Entra throttles. Set it before the first request.
	throttle func(n int64) http.Header
}

const (
	entraHost     = "https://login.idp.example"
	entraTenant   = "00000000-0000-0000-0000-000000000001"
	entraClientID = "11111111-1111-1111-1111-111111111111"
	entraSecret   = "entra~Secret.0123456789"
)

// newFakeEntra returns a fake authority that issues tokens of the given
// lifetime. A request for anything else fails the test.
func newFakeEntra(t testing.TB, lifetime time.Duration) *fakeEntra {
	t.Helper()
	f := &fakeEntra{mock: httpmock.NewMockTransport(), host: entraHost, tenant: entraTenant, clientID: entraClientID, secret: entraSecret, lifetime: lifetime}
	f.mock.RegisterResponder(http.MethodGet, f.authority()+"/v2.0/.well-known/openid-configuration", f.openIDConfiguration)
	f.mock.RegisterResponder(http.MethodPost, f.authority()+"/oauth2/v2.0/token", f.token)
	var strays atomic.Int64
	f.mock.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
		strays.Add(1)
		return jsonResponse(http.StatusNotFound, `{"error":"not_found"}`), nil
	})
	t.Cleanup(func() {
		if n := strays.Load(); n != 0 {
			t.Errorf("requests the fake authority does not serve: got %d (%v); want 0", n, f.mock.GetCallCountInfo())
		}
	})
	return f
}

func (f *fakeEntra) authority() string { return f.host + "/" + f.tenant }

func (f *fakeEntra) openIDConfiguration(*http.Request) (*http.Response, error) {
	return entraJSON(http.StatusOK, map[string]any{
		"issuer":                 f.authority() + "/v2.0",
		"authorization_endpoint": f.authority() + "/oauth2/v2.0/authorize",
		"token_endpoint":         f.authority() + "/oauth2/v2.0/token",
	}), nil
}

func (f *fakeEntra) token(r *http.Request) (*http.Response, error) {
	n := f.tokenRequests.Add(1)
	if f.beforeToken != nil {
		f.beforeToken(n)
	}
	if f.throttle != nil {
		if h := f.throttle(n); h != nil {
			resp := entraJSON(http.StatusTooManyRequests, map[string]any{
				"error":             "temporarily_unavailable",
				"error_description": "AADSTS90055: Too many requests.",
			})
			for k, v := range h {
				resp.Header[k] = v
			}
			return resp, nil
		}
	}
	if err := r.ParseForm(); err != nil {
		return entraJSON(http.StatusBadRequest, map[string]any{"error": "invalid_request"}), nil
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		return entraJSON(http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"}), nil
	case r.PostForm.Get("client_id") != f.clientID || r.PostForm.Get("client_secret") != f.secret:
		return entraJSON(http.StatusUnauthorized, map[string]any{
			"error":             "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided.",
			"error_codes":       []int{7000215},
		}), nil
	case !slices.ContainsFunc(strings.Fields(r.PostForm.Get("scope")), func(s string) bool { return strings.HasSuffix(s, "/.default") }):
		return entraJSON(http.StatusBadRequest, map[string]any{"error": "invalid_scope"}), nil
	}
	answer := map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(f.lifetime.Seconds()),
		"ext_expires_in": int(f.lifetime.Seconds()),
		"access_token":   fmt.Sprintf("entra-token-%d", f.issued.Add(1)),
	}
	if f.refreshIn > 0 {
		answer["refresh_in"] = int(f.refreshIn.Seconds())
	}
	return entraJSON(http.StatusOK, answer), nil
}

// credential returns azidentity's ClientSecretCredential for this
// authority, with the given secret.
func (f *fakeEntra) credential(t testing.TB, secret string) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(f.tenant, f.clientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: f.host},
			Transport: &http.Client{Transport: f.mock},
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: got error %v; want none", err)
	}
	return cred
}

func entraJSON(status int, v any) *http.Response {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return jsonResponse(status, string(b))
}

// jsonResponse returns a JSON answer.
func jsonResponse(status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}
