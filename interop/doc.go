// Package interop holds tests of proxyauth against third-party servers that
// a library user should not inherit as dependencies: the go-oauth2/oauth2
// authorization server (client secrets), and panva's oidc-provider, an npm
// package that node runs on loopback (private_key_jwt with RSA and ECDSA
// keys, and ready client assertions), with an upstream API that accepts
// only the tokens the provider issued. It also runs the proxyauth command,
// built from the repository, between clients that no one here wrote (the
// official OpenAI Node SDK and curl) and the loopback sandbox gateway. It
// is a module of its own, so that
// the library's go.mod stays lean; `make test` runs it after installing
// the npm packages with `npm ci`.
package interop
