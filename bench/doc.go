// Package bench compares proxyauth with golang.org/x/oauth2 and an azcore
// bearer-token pipeline: the peers configured alike, the scenarios that
// `make bench` runs against the loopback sandbox, and the Markdown tables
// that go into BENCHMARKS.md. The cached-path benchmarks are in its tests.
// Overhead measures what the proxyauth command's serve adds to a request.
package bench
