package credential

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// AzureAD adapts any azidentity credential ([azcore.TokenCredential]) to a
// [TokenCredential], so that the whole azidentity chain (managed identity,
// workload identity, client secrets and certificates, the Azure CLI, ...)
// can authenticate plain HTTP clients.
//
// The zero value behaves as NewAzureAD(nil). An AzureAD is safe for
// concurrent use.
type AzureAD struct {
	// newDefault creates the credential used when none was given. nil means
	// azidentity.NewDefaultAzureCredential(nil). Tests inject a fake here
	// rather than through a package variable, so that they can run in
	// parallel.
	newDefault func() (azcore.TokenCredential, error)

	mu   sync.Mutex
	cred azcore.TokenCredential // guarded by mu; nil until created
}

// NewAzureAD returns an AzureAD that gets its tokens from cred.
//
// With a nil cred, azidentity.DefaultAzureCredential is created on the first
// call of GetToken rather than here, so that building an AzureAD never fails
// and costs nothing until a token is needed. It is created once however many
// callers race; a failed creation is returned by that call and tried again by
// the next one, since what was missing (an environment variable, a logged-in
// Azure CLI) may have been fixed in between.
func NewAzureAD(cred azcore.TokenCredential) *AzureAD {
	return newAzureAD(cred, nil)
}

// newAzureAD is NewAzureAD with the constructor of the default credential
// injected; nil newDefault means azidentity.NewDefaultAzureCredential.
func newAzureAD(cred azcore.TokenCredential, newDefault func() (azcore.TokenCredential, error)) *AzureAD {
	return &AzureAD{cred: cred, newDefault: newDefault}
}

func defaultAzureCredential() (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(nil)
}

// credential returns the credential to use, creating the default one if
// needed. Only a success is remembered, unlike with sync.Once.
func (a *AzureAD) credential() (azcore.TokenCredential, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cred != nil {
		return a.cred, nil
	}
	newDefault := a.newDefault
	if newDefault == nil {
		newDefault = defaultAzureCredential
	}
	cred, err := newDefault()
	if err != nil {
		return nil, fmt.Errorf("credential: creating azidentity.DefaultAzureCredential: %w", err)
	}
	if cred == nil {
		return nil, errors.New("credential: creating azidentity.DefaultAzureCredential returned no credential")
	}
	a.cred = cred
	return cred, nil
}

// String names the type of the underlying credential, and nothing of what
// it holds.
func (a *AzureAD) String() string {
	if a == nil {
		return "credential.AzureAD(nil)"
	}
	a.mu.Lock()
	cred := a.cred
	a.mu.Unlock()
	if cred == nil {
		return "credential.AzureAD{Credential:DefaultAzureCredential, not created yet}"
	}
	return fmt.Sprintf("credential.AzureAD{Credential:%T}", cred)
}

// Format implements [fmt.Formatter] so that every verb prints String: the
// fields of an azidentity credential are not for printing.
func (a *AzureAD) Format(f fmt.State, verb rune) { writeRedacted(f, verb, a.String()) }

// GetToken gets a token for scope from the azidentity credential.
//
// scope is split with [strings.Fields] into TokenRequestOptions.Scopes; an
// empty scope is an error, since Microsoft Entra ID issues no token without
// one (the usual form is a resource's ".default" scope, such as
// "https://cognitiveservices.azure.com/.default"). ExpiresOn and RefreshOn
// are carried over. Errors of azidentity are wrapped, so that errors.As
// still reaches *azidentity.AuthenticationFailedError, and errors.Is the
// errors a credential chain reports as unavailable.
func (a *AzureAD) GetToken(ctx context.Context, scope string) (AccessToken, error) {
	scopes := strings.Fields(scope)
	if len(scopes) == 0 {
		return AccessToken{}, errors.New(`credential: AzureAD needs a scope, such as "https://cognitiveservices.azure.com/.default"`)
	}
	if err := ctx.Err(); err != nil {
		return AccessToken{}, err
	}
	cred, err := a.credential()
	if err != nil {
		return AccessToken{}, err
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
	if err != nil {
		return AccessToken{}, fmt.Errorf("credential: AzureAD token for scope %q: %w", scope, err)
	}
	if tok.Token == "" {
		return AccessToken{}, fmt.Errorf("credential: AzureAD token for scope %q: the credential returned an empty token", scope)
	}
	return AccessToken{Token: tok.Token, ExpiresOn: tok.ExpiresOn, RefreshOn: tok.RefreshOn}, nil
}
