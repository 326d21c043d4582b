// Package tokencache supports the transport package: a token cache that
// refreshes in the background before expiry and shares one fetch among all
// concurrent callers.
package tokencache
