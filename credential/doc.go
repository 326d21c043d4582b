// Package credential defines how proxyauth obtains bearer tokens: the
// [TokenCredential] interface, the [AccessToken] it returns, and
// implementations for static tokens, plain functions, any
// [golang.org/x/oauth2.TokenSource], and the OAuth2 client credentials grant
// ([OAuth2]) against any RFC 6749 server. Azure AD through azidentity is in
// the subpackage [github.com/proxyauth/proxyauth/credential/azuread], so
// that a program using only OAuth2 compiles no Azure package.
//
// A credential fetches; it does not cache. Caching, early refresh and
// deduplication of concurrent fetches are the job of the transport package,
// so every implementation here may go to its identity provider on each call.
package credential
