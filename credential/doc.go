// Package credential defines how proxyauth obtains bearer tokens: the
// [TokenCredential] interface, the [AccessToken] it returns, and
// implementations for static tokens, plain functions, any
// [golang.org/x/oauth2.TokenSource], Azure AD through azidentity ([AzureAD]),
// and the OAuth2 client credentials grant ([OAuth2]).
//
// A credential fetches; it does not cache. Caching, early refresh and
// deduplication of concurrent fetches are the job of the transport package,
// so every implementation here may go to its identity provider on each call.
package credential
