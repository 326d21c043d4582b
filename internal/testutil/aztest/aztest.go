// Package aztest supports the tests of proxyauth that drive azidentity-style
// credentials. It is apart from testutil so that tests which do not need the
// Azure SDK do not compile it.
package aztest

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Cred is an [azcore.TokenCredential] whose GetToken is a function.
type Cred func(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error)

// GetToken calls c.
func (c Cred) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return c(ctx, opts)
}

// Static returns a Cred that always hands out tok.
func Static(tok azcore.AccessToken) Cred {
	return func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) { return tok, nil }
}
