// Package proxyauth puts OAuth2 and Azure AD bearer tokens on outgoing HTTP
// requests.
//
// The work is done by two packages:
//
//   - [github.com/proxyauth/proxyauth/credential] fetches tokens: the OAuth2
//     client credentials grant against any RFC 6749 server, any
//     golang.org/x/oauth2 TokenSource, or a function;
//     [github.com/proxyauth/proxyauth/credential/azuread] adds Azure AD
//     through azidentity.
//   - [github.com/proxyauth/proxyauth/transport] is an [net/http.RoundTripper]
//     that caches the token, refreshes it in the background before it
//     expires, makes any number of concurrent requests share one fetch, sets
//     "Authorization: Bearer <token>" and resends once on 401.
//
// transport.Wrap turns any *http.Client, and so any OpenAI-compatible SDK
// client that accepts one, into an authenticated client.
package proxyauth
