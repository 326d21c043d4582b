// Package sandbox supports the demo, the end-to-end tests and the
// benchmarks: an OAuth2 token endpoint and an OpenAI-compatible LLM proxy
// that accepts only the tokens that endpoint issued, both on loopback.
package sandbox
