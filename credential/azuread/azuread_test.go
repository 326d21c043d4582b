package azuread_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/credential/azuread"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/tokencache"
)

const entraScope = "https://cognitiveservices.azure.com/.default"

func TestAzureADClientSecretCredential(t *testing.T) {
	t.Parallel()
	entra := newFakeEntra(t, time.Hour)
	a := azuread.New(entra.credential(t, entraSecret))

	before := time.Now()
	tok, err := a.GetToken(context.Background(), entraScope)
	after := time.Now()
	if err != nil {
		t.Fatalf("GetToken: got error %v; want none", err)
	}
	if want := "entra-token-1"; tok.Token != want {
		t.Errorf("Token: got %q; want %q", tok.Token, want)
	}
	// MSAL computes the expiry from expires_in with a clock of its own, to
	// the second.
	lo, hi := before.Add(time.Hour-time.Second), after.Add(time.Hour+time.Second)
	if tok.ExpiresOn.Before(lo) || tok.ExpiresOn.After(hi) {
		t.Errorf("ExpiresOn: got %v; want between %v and %v", tok.ExpiresOn, lo, hi)
	}
	if !tok.RefreshOn.IsZero() {
		t.Errorf("RefreshOn: got %v; want zero without refresh_in", tok.RefreshOn)
	}
	if got := entra.tokenRequests.Load(); got != 1 {
		t.Errorf("token requests: got %d; want 1", got)
	}
}

func TestAzureADRefreshOn(t *testing.T) {
	t.Parallel()
	entra := newFakeEntra(t, 2*time.Hour)
	entra.refreshIn = 30 * time.Minute
	a := azuread.New(entra.credential(t, entraSecret))

	before := time.Now()
	tok, err := a.GetToken(context.Background(), entraScope)
	after := time.Now()
	if err != nil {
		t.Fatalf("GetToken: got error %v; want none", err)
	}
	lo, hi := before.Add(30*time.Minute-time.Second), after.Add(30*time.Minute+time.Second)
	if tok.RefreshOn.Before(lo) || tok.RefreshOn.After(hi) {
		t.Errorf("RefreshOn: got %v; want between %v and %v", tok.RefreshOn, lo, hi)
	}
	lo, hi = before.Add(2*time.Hour-time.Second), after.Add(2*time.Hour+time.Second)
	if tok.ExpiresOn.Before(lo) || tok.ExpiresOn.After(hi) {
		t.Errorf("ExpiresOn: got %v; want between %v and %v", tok.ExpiresOn, lo, hi)
	}
}

func TestAzureADWrongSecret(t *testing.T) {
	t.Parallel()
	entra := newFakeEntra(t, time.Hour)
	const wrong = "not-the-secret-42"
	a := azuread.New(entra.credential(t, wrong))

	tok, err := a.GetToken(context.Background(), entraScope)
	if err == nil {
		t.Fatalf("GetToken: got token %v; want an error", tok)
	}
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		t.Fatalf("errors.As(*azidentity.AuthenticationFailedError): got false for %T %v; want true", err, err)
	}
	if afe.RawResponse == nil || afe.RawResponse.StatusCode != 401 {
		t.Errorf("RawResponse: got %v; want a 401", afe.RawResponse)
	}
	if !strings.HasPrefix(err.Error(), "azuread: ") {
		t.Errorf("error: got %q; want the prefix %q", err, "azuread: ")
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error %q contains the client secret", err)
	}
	if tok != (credential.AccessToken{}) {
		t.Errorf("token with the error: got %v; want the zero AccessToken", tok)
	}
}

func TestAzureADEmptyScope(t *testing.T) {
	t.Parallel()
	entra := newFakeEntra(t, time.Hour)
	a := azuread.New(entra.credential(t, entraSecret))
	for _, scope := range []string{"", " ", "\t\n"} {
		_, err := a.GetToken(context.Background(), scope)
		if err == nil || !strings.Contains(err.Error(), "a scope is required") {
			t.Errorf("GetToken(%q): got error %v; want one that says a scope is needed", scope, err)
		}
	}
	if got := entra.tokenRequests.Load(); got != 0 {
		t.Errorf("token requests: got %d; want 0", got)
	}
}

func TestAzureADPrintsNoSecret(t *testing.T) {
	t.Parallel()
	entra := newFakeEntra(t, time.Hour)
	a := azuread.New(entra.credential(t, entraSecret))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{a, struct{ A *azuread.Credential }{a}} {
			if got := fmt.Sprintf(verb, v); strings.Contains(got, entraSecret) || strings.Contains(got, entra.clientID) {
				t.Errorf("Sprintf(%q): got %s; want no secret or client ID", verb, got)
			}
		}
	}
	if got, want := fmt.Sprint(a), "azuread.Credential{Credential:*azidentity.ClientSecretCredential}"; got != want {
		t.Errorf("Sprint: got %s; want %s", got, want)
	}
	if got, want := fmt.Sprint(azuread.New(nil)), "azuread.Credential{Credential:DefaultAzureCredential, not created yet}"; got != want {
		t.Errorf("Sprint of New(nil): got %s; want %s", got, want)
	}
}

// Entra's Retry-After reaches the transport's cache through azidentity and
// the adapter, without the cache knowing Azure: real azidentity against a
// fake authority that throttles with 429 and Retry-After: 7, the cache on
// a fake clock and without jitter. No token request starts before the 7 s
// have passed; the first request after gets a token.
func TestAzureADRetryAfterReachesTheCache(t *testing.T) {
	t.Parallel()
	entra := newFakeEntra(t, time.Hour)
	var throttling atomic.Bool
	throttling.Store(true)
	entra.throttle = func(int64) http.Header {
		if throttling.Load() {
			return http.Header{"Retry-After": {"7"}}
		}
		return nil
	}
	a := azuread.New(entra.credential(t, entraSecret))
	clk := testutil.NewClock()
	c := tokencache.New(func(ctx context.Context) (credential.AccessToken, error) {
		return a.GetToken(ctx, entraScope)
	}, tokencache.Options{Now: clk.Now, Rand: func() float64 { return 0 }})
	start := clk.Now()

	_, err := c.Get(context.Background())
	var fe *tokencache.FetchError
	var afe *azidentity.AuthenticationFailedError
	var ra credential.RetryAfterError
	if !errors.As(err, &fe) || !errors.As(err, &afe) || !errors.As(err, &ra) {
		t.Fatalf("Get: got error %v; want a FetchError reaching the azidentity error and a RetryAfterError", err)
	}
	if afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusTooManyRequests || ra.RetryAfterDelay() != 7*time.Second {
		t.Fatalf("got %v with RetryAfterDelay %v; want the 429 with 7s", afe.RawResponse, ra.RetryAfterDelay())
	}
	if got := fe.NextTry.Sub(start); got != 7*time.Second {
		t.Fatalf("NextTry: got now+%v; want now+7s", got)
	}

	throttling.Store(false)
	clk.Set(start.Add(7*time.Second - time.Nanosecond))
	if _, err := c.Get(context.Background()); err == nil {
		t.Fatal("Get a nanosecond before the 7 s: got a token; want the throttling error")
	}
	if got := entra.tokenRequests.Load(); got != 1 {
		t.Fatalf("token requests within the 7 s: got %d; want 1", got)
	}
	clk.Set(start.Add(7 * time.Second))
	if e, err := c.Get(context.Background()); err != nil || e.Token.Token != "entra-token-1" {
		t.Fatalf("Get after the 7 s: got %v, %v; want entra-token-1", e, err)
	}
	if got := entra.tokenRequests.Load(); got != 2 {
		t.Fatalf("token requests: got %d; want 2", got)
	}
}
