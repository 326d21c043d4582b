// Package azuread adapts azidentity credentials to
// [credential.TokenCredential], so that the whole azidentity chain (managed
// identity, workload identity, client secrets and certificates, the Azure
// CLI, ...) can authenticate plain HTTP clients through the transport
// package.
//
// It is the only package of proxyauth that imports the Azure SDK: a program
// that uses only OAuth2 does not compile it.
package azuread

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/redact"
	"github.com/proxyauth/proxyauth/internal/retryafter"
)

// Credential adapts any azidentity credential ([azcore.TokenCredential]) to
// a [credential.TokenCredential].
//
// The zero value behaves as New(nil). A Credential is safe for concurrent
// use, and no fmt verb prints what the underlying credential holds.
type Credential struct {
	// newDefault creates the credential used when none was given. nil means
	// azidentity.NewDefaultAzureCredential(nil). Tests inject a fake here
	// rather than through a package variable, so that they can run in
	// parallel.
	newDefault func() (azcore.TokenCredential, error)

	mu   sync.Mutex
	cred azcore.TokenCredential // guarded by mu; nil until created
}

var _ credential.TokenCredential = (*Credential)(nil)

// New returns a Credential that gets its tokens from cred.
//
// With a nil cred, azidentity.DefaultAzureCredential is created on the first
// call of GetToken rather than here, so that New never fails and costs
// nothing until a token is needed. It is created once however many callers
// race; a failed creation is returned by that call and tried again by the
// next one, since what was missing (an environment variable, a logged-in
// Azure CLI) may have been fixed in between.
func New(cred azcore.TokenCredential) *Credential {
	return newCredential(cred, nil)
}

// newCredential is New with the constructor of the default credential
// injected; nil newDefault means azidentity.NewDefaultAzureCredential.
func newCredential(cred azcore.TokenCredential, newDefault func() (azcore.TokenCredential, error)) *Credential {
	return &Credential{cred: cred, newDefault: newDefault}
}

func defaultAzureCredential() (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(nil)
}

// credential returns the credential to use, creating the default one if
// needed. Only a success is remembered, unlike with sync.Once.
func (c *Credential) credential() (azcore.TokenCredential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cred != nil {
		return c.cred, nil
	}
	newDefault := c.newDefault
	if newDefault == nil {
		newDefault = defaultAzureCredential
	}
	cred, err := newDefault()
	if err != nil {
		return nil, fmt.Errorf("azuread: creating azidentity.DefaultAzureCredential: %w", err)
	}
	if cred == nil {
		return nil, errors.New("azuread: creating azidentity.DefaultAzureCredential returned no credential")
	}
	c.cred = cred
	return cred, nil
}

// String names the type of the underlying credential, and nothing of what
// it holds.
func (c *Credential) String() string {
	if c == nil {
		return "azuread.Credential(nil)"
	}
	c.mu.Lock()
	cred := c.cred
	c.mu.Unlock()
	if cred == nil {
		return "azuread.Credential{Credential:DefaultAzureCredential, not created yet}"
	}
	return fmt.Sprintf("azuread.Credential{Credential:%T}", cred)
}

// Format implements [fmt.Formatter] so that every verb prints String: the
// fields of an azidentity credential are not for printing.
func (c *Credential) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String()) }

// GetToken gets a token for scope from the azidentity credential.
//
// scope is split with [strings.Fields] into TokenRequestOptions.Scopes; an
// empty scope is an error, since Microsoft Entra ID issues no token without
// one (the usual form is a resource's ".default" scope, such as
// "https://cognitiveservices.azure.com/.default"). ExpiresOn and RefreshOn
// are carried over. Errors of azidentity are wrapped, so that errors.As
// still reaches *azidentity.AuthenticationFailedError, and errors.Is the
// errors a credential chain reports as unavailable. When the identity
// provider's answer (the error's RawResponse) has a Retry-After header, as
// Microsoft Entra ID sends when it throttles, the error is also a
// [credential.RetryAfterError] with that delay, so that the transport waits
// for it before its next token request.
func (c *Credential) GetToken(ctx context.Context, scope string) (credential.AccessToken, error) {
	scopes := strings.Fields(scope)
	if len(scopes) == 0 {
		return credential.AccessToken{}, errors.New(`azuread: a scope is required, such as "https://cognitiveservices.azure.com/.default"`)
	}
	if err := ctx.Err(); err != nil {
		return credential.AccessToken{}, err
	}
	cred, err := c.credential()
	if err != nil {
		return credential.AccessToken{}, err
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
	if err != nil {
		return credential.AccessToken{}, withRetryAfter(fmt.Errorf("azuread: token for scope %q: %w", scope, err))
	}
	if tok.Token == "" {
		return credential.AccessToken{}, fmt.Errorf("azuread: token for scope %q: the credential returned an empty token", scope)
	}
	return credential.AccessToken{Token: tok.Token, ExpiresOn: tok.ExpiresOn, RefreshOn: tok.RefreshOn}, nil
}

// withRetryAfter returns err as a [credential.RetryAfterError] when it holds
// an *azidentity.AuthenticationFailedError whose answer asked for a wait,
// else err itself.
func withRetryAfter(err error) error {
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse == nil {
		return err
	}
	// azidentity keeps no time of receipt; the answer came just now, and
	// an HTTP date counts from the answer's Date header when it has one.
	if d := retryafter.Delay(afe.RawResponse.Header, time.Now()); d > 0 {
		return &retryAfterError{err: err, delay: d}
	}
	return err
}

// retryAfterError is an error of azidentity whose answer had a Retry-After
// header. It reads as the error it wraps, and errors.As and errors.Is
// reach through it.
type retryAfterError struct {
	err   error
	delay time.Duration
}

var _ credential.RetryAfterError = (*retryAfterError)(nil)

func (e *retryAfterError) Error() string                  { return e.err.Error() }
func (e *retryAfterError) Unwrap() error                  { return e.err }
func (e *retryAfterError) RetryAfterDelay() time.Duration { return e.delay }
