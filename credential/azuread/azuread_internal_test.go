package azuread

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/aztest"
)

func TestAzureADMapsScopesAndTimes(t *testing.T) {
	t.Parallel()
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	refresh := expires.Add(-30 * time.Minute)
	tests := []struct {
		name  string
		scope string
		want  []string
	}{
		{"one", "https://x/.default", []string{"https://x/.default"}},
		{"several", "  api://a/read\tapi://a/write\n", []string{"api://a/read", "api://a/write"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			a := New(aztest.Cred(func(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
				got = opts.Scopes
				return azcore.AccessToken{Token: "tok-" + tt.name, ExpiresOn: expires, RefreshOn: refresh}, nil
			}))
			tok, err := a.GetToken(context.Background(), tt.scope)
			if err != nil {
				t.Fatalf("GetToken: got error %v; want none", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Scopes: got %q; want %q", got, tt.want)
			}
			want := credential.AccessToken{Token: "tok-" + tt.name, ExpiresOn: expires, RefreshOn: refresh}
			if tok != want {
				t.Errorf("token: got %+v (%s); want %+v", tok, tok.Token, want)
			}
		})
	}
}

func TestAzureADErrorsStayReachable(t *testing.T) {
	t.Parallel()
	// azidentity exports no CredentialUnavailableError type since v0.x;
	// its constructor is what a caller can compare with.
	unavailable := azidentity.NewCredentialUnavailableError("no managed identity here")
	afe := &azidentity.AuthenticationFailedError{}
	tests := []struct {
		name  string
		cause error
		check func(error) bool
	}{
		{"unavailable", unavailable, func(err error) bool { return errors.Is(err, unavailable) }},
		{"authentication failed", afe, func(err error) bool {
			var got *azidentity.AuthenticationFailedError
			return errors.As(err, &got) && got == afe
		}},
		{"context", context.DeadlineExceeded, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(aztest.Cred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
				return azcore.AccessToken{}, tt.cause
			}))
			_, err := a.GetToken(context.Background(), "https://x/.default")
			if err == nil || !tt.check(err) {
				t.Errorf("GetToken: got error %v; want one that reaches %T", err, tt.cause)
			}
		})
	}
}

// An azidentity failure whose answer has a Retry-After header is a
// credential.RetryAfterError with that delay, and still reads and matches
// as the azidentity error; one without is left as it was.
func TestAzureADRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header // of the RawResponse; nil: no RawResponse
		want   time.Duration
	}{
		{"delay seconds", http.Header{"Retry-After": {"30"}}, 30 * time.Second},
		{"a date after the answer's Date", http.Header{"Retry-After": {"Fri, 02 Jan 2026 03:06:05 GMT"}, "Date": {"Fri, 02 Jan 2026 03:04:05 GMT"}}, 2 * time.Minute},
		{"zero", http.Header{"Retry-After": {"0"}}, 0},
		{"junk", http.Header{"Retry-After": {"soon"}}, 0},
		{"no Retry-After", http.Header{}, 0},
		{"no answer", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			afe := &azidentity.AuthenticationFailedError{}
			if tt.header != nil {
				afe.RawResponse = &http.Response{StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Header: tt.header, Body: http.NoBody}
			}
			a := New(aztest.Cred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
				return azcore.AccessToken{}, afe
			}))
			_, err := a.GetToken(context.Background(), "https://x/.default")
			var got *azidentity.AuthenticationFailedError
			if !errors.As(err, &got) || got != afe {
				t.Errorf("errors.As(*AuthenticationFailedError): got %v for %v; want the azidentity error", got, err)
			}
			if want := `azuread: token for scope "https://x/.default": ` + afe.Error(); err.Error() != want {
				t.Errorf("message: got %q; want %q", err, want)
			}
			var ra credential.RetryAfterError
			switch isRA := errors.As(err, &ra); {
			case tt.want == 0 && isRA:
				t.Errorf("errors.As(RetryAfterError): got one with %v; want none", ra.RetryAfterDelay())
			case tt.want != 0 && (!isRA || ra.RetryAfterDelay() != tt.want):
				t.Errorf("errors.As(RetryAfterError): got %v (%v); want RetryAfterDelay %v", isRA, ra, tt.want)
			}
		})
	}
}

func TestAzureADEmptyToken(t *testing.T) {
	t.Parallel()
	a := New(aztest.Cred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		return azcore.AccessToken{ExpiresOn: time.Now().Add(time.Hour)}, nil
	}))
	if _, err := a.GetToken(context.Background(), "https://x/.default"); err == nil {
		t.Errorf("GetToken: got no error for an empty token; want one")
	}
}

func TestAzureADCanceledContext(t *testing.T) {
	t.Parallel()
	var created atomic.Int64
	a := newCredential(nil, func() (azcore.TokenCredential, error) {
		created.Add(1)
		return nil, errors.New("must not be called")
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.GetToken(ctx, "https://x/.default"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetToken: got error %v; want context.Canceled", err)
	}
	if got := created.Load(); got != 0 {
		t.Errorf("creations: got %d; want 0", got)
	}
}

// However many callers race to create the default credential, it is
// created once: creating it takes until every caller has called GetToken.
// Creating it does not serialise the callers' GetToken either: the created
// credential holds every call until all callers are inside it.
func TestAzureADLazyDefaultOnce(t *testing.T) {
	t.Parallel()
	const callers = 100
	inside := testutil.NewBarrier(t, callers)
	var entered, created, calls atomic.Int64
	a := newCredential(nil, func() (azcore.TokenCredential, error) {
		created.Add(1)
		// Bounded, so that a broken lock cannot hang the test; the
		// counts below then fail it.
		for deadline := time.Now().Add(testutil.HangTimeout); entered.Load() < callers && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		return aztest.Cred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
			n := calls.Add(1)
			inside.Arrive()
			return azcore.AccessToken{Token: fmt.Sprint("tok-", n), ExpiresOn: time.Now().Add(time.Hour)}, nil
		}), nil
	})
	testutil.Concurrently(t, callers, "GetToken", func(int) error {
		entered.Add(1)
		_, err := a.GetToken(context.Background(), "https://x/.default")
		return err
	})
	inside.Check(t, "GetToken calls of the created credential")
	if got := created.Load(); got != 1 {
		t.Errorf("default credentials created: got %d; want 1", got)
	}
	if got := calls.Load(); got != callers {
		t.Errorf("GetToken calls of the credential: got %d; want %d", got, callers)
	}
}

func TestAzureADLazyDefaultRetriedAfterFailure(t *testing.T) {
	t.Parallel()
	cause := azidentity.NewCredentialUnavailableError("DefaultAzureCredential: no credential in this environment")
	var created atomic.Int64
	a := newCredential(nil, func() (azcore.TokenCredential, error) {
		if created.Add(1) == 1 {
			return nil, cause
		}
		return aztest.Cred(func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
			return azcore.AccessToken{Token: "tok", ExpiresOn: time.Now().Add(time.Hour)}, nil
		}), nil
	})

	_, err := a.GetToken(context.Background(), "https://x/.default")
	if !errors.Is(err, cause) {
		t.Fatalf("first GetToken: got error %v; want one wrapping the creation error", err)
	}
	for i := range 2 {
		tok, err := a.GetToken(context.Background(), "https://x/.default")
		if err != nil || tok.Token != "tok" {
			t.Fatalf("GetToken %d after the failure: got %v, %v; want the token, nil", i+2, tok, err)
		}
	}
	if got := created.Load(); got != 2 {
		t.Errorf("creations: got %d; want 2 (one failed, one kept)", got)
	}
}

// FuzzAzureADScope checks that a scope reaches an azidentity credential as
// strings.Fields(scope), that an empty one is refused without a call, and
// that the token's times are carried over.
func FuzzAzureADScope(f *testing.F) {
	for _, s := range []string{"", " ", "https://cognitiveservices.azure.com/.default", "a b\tc\n", "\u00a0x\u2028y", "\xff"} {
		f.Add(s)
	}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, scope string) {
		var got []string
		calls := 0
		a := newCredential(aztest.Cred(func(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
			calls++
			got = opts.Scopes
			return azcore.AccessToken{Token: "az", ExpiresOn: expires, RefreshOn: expires.Add(-time.Minute)}, nil
		}), func() (azcore.TokenCredential, error) { return nil, errors.New("no default credential in a test") })
		tok, err := a.GetToken(context.Background(), scope)
		want := strings.Fields(scope)
		if len(want) == 0 {
			if err == nil || calls != 0 {
				t.Fatalf("GetToken(%q): err %v after %d calls; want an error and no call", scope, err, calls)
			}
			return
		}
		if err != nil || calls != 1 || !slices.Equal(got, want) {
			t.Fatalf("GetToken(%q): scopes %q, err %v; want %q", scope, got, err, want)
		}
		if !tok.ExpiresOn.Equal(expires) || !tok.RefreshOn.Equal(expires.Add(-time.Minute)) {
			t.Fatalf("times not carried over: %v", tok)
		}
	})
}
