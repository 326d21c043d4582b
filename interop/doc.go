// Package interop holds tests of proxyauth against third-party servers that
// a library user should not inherit as dependencies, such as the
// go-oauth2/oauth2 authorization server. It is a module of its own, so that
// the library's go.mod stays lean; `make test` runs it.
package interop
