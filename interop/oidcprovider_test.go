package interop_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/testkey"
	"github.com/proxyauth/proxyauth/transport"
)

// oidcProvider is panva's oidc-provider (npm, v9), run by node on
// loopback by interop/node/oidc-provider.mjs, with an upstream API that
// accepts only the access tokens the provider issued.
type oidcProvider struct {
	issuer   string // http://127.0.0.1:port, no trailing slash
	tokenURL string // issuer + "/token"
	upstream string // the API's base URL
	output   *syncBuffer
}

// oidcClient is a client registered at the provider with the public key
// of a private_key_jwt key.
type oidcClient struct {
	id  string
	pub crypto.PublicKey
	kid string // "" registers the key without a kid, and the provider then refuses one
}

// syncBuffer collects what the node process writes, and reports the line
// that says it is ready.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan string
	sent  bool
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.sent && b.ready != nil {
		for line := range strings.Lines(b.buf.String()) {
			if rest, ok := strings.CutPrefix(line, "ready "); ok && strings.HasSuffix(line, "\n") {
				b.ready <- strings.TrimSpace(rest)
				b.sent = true
				break
			}
		}
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startOIDCProvider runs the provider with clients registered. A missing
// node or a missing npm package fails the test with what to install: these
// tests are part of `make test`, which installs the packages.
func startOIDCProvider(t *testing.T, clients ...oidcClient) *oidcProvider {
	t.Helper()
	node := requireNode(t)
	if _, err := os.Stat(filepath.Join("node_modules", "oidc-provider", "package.json")); err != nil {
		t.Fatalf("the npm package oidc-provider is not installed: run `cd interop && npm ci` (make test runs it): %v", err)
	}

	type client struct {
		ID   string         `json:"client_id"`
		JWKS map[string]any `json:"jwks"`
		Kid  string         `json:"kid,omitempty"`
	}
	var setup struct {
		Clients []client `json:"clients"`
	}
	for _, c := range clients {
		setup.Clients = append(setup.Clients, client{ID: c.id, Kid: c.kid, JWKS: map[string]any{"keys": []any{jwk(t, c.pub, c.kid)}}})
	}
	line, err := json.Marshal(setup)
	if err != nil {
		t.Fatal(err)
	}

	out := &syncBuffer{ready: make(chan string, 1)}
	cmd := exec.Command(node, filepath.Join("node", "oidc-provider.mjs"))
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The script exits when its stdin closes; a kill is for a script that
	// does not. Either way the test waits for the process to be gone.
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(testutil.HangTimeout):
			_ = cmd.Process.Kill()
			testutil.Recv(t, exited, "the killed node process to exit")
		}
		if t.Failed() {
			t.Logf("oidc-provider output:\n%s", out)
		}
	})
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("writing the setup to node: %v\n%s", err, out)
	}

	var ready string
	select {
	case ready = <-out.ready:
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("node exited before oidc-provider was ready (%v):\n%s", err, out)
	case <-time.After(testutil.HangTimeout):
		t.Fatalf("oidc-provider did not say it was ready within %v:\n%s", testutil.HangTimeout, out)
	}
	issuer, upstream, ok := strings.Cut(ready, " ")
	if !ok {
		t.Fatalf("oidc-provider's ready line %q is not \"ready <issuer> <upstream>\"", ready)
	}
	return &oidcProvider{issuer: issuer, tokenURL: issuer + "/token", upstream: upstream, output: out}
}

// jwk returns the public JWK (RFC 7517) of pub.
func jwk(t *testing.T, pub crypto.PublicKey, kid string) map[string]any {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var k map[string]any
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k = map[string]any{"kty": "RSA", "n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())}
	case *ecdsa.PublicKey:
		e, err := p.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		point := e.Bytes()[1:] // uncompressed: 0x04, X, Y
		size := len(point) / 2
		k = map[string]any{"kty": "EC", "crv": p.Curve.Params().Name, "x": b64(point[:size]), "y": b64(point[size:])}
	default:
		t.Fatalf("no JWK for %T", pub)
	}
	if kid != "" {
		k["kid"] = kid
	}
	return k
}

func mustKey[K crypto.Signer](k K, err error) K {
	if err != nil {
		panic(err)
	}
	return k
}

// upstreamAnswer is what the upstream API says of a token it accepted.
type upstreamAnswer struct {
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// callUpstream sends one request through client to the upstream API.
func callUpstream(t *testing.T, client *http.Client, p *oidcProvider) (int, upstreamAnswer, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.upstream+"/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, upstreamAnswer{}, err
	}
	defer resp.Body.Close()
	var a upstreamAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatalf("the upstream's answer: %v", err)
		}
	}
	return resp.StatusCode, a, nil
}

// TestOIDCProvider runs the whole flow against oidc-provider: the transport
// gets a token with private_key_jwt (RSA RS256 and PS256, ECDSA P-256 and
// P-384, keys behind a signer that hides their type, the audience the
// token URL or the issuer) or with a ready assertion from a file, and the
// upstream accepts it because the provider issued it. The provider refuses
// an assertion used twice, so every token request carrying a new one is
// proven too. A key the provider does not know, or an audience it does
// not accept, is an *OAuth2Error with invalid_client.
func TestOIDCProvider(t *testing.T) {
	t.Parallel()
	rsaKey := mustKey(rsa.GenerateKey(rand.Reader, 2048))
	p256 := mustKey(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	p384 := mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	federated := mustKey(rsa.GenerateKey(rand.Reader, 2048)) // the workload platform's key
	unknown := mustKey(rsa.GenerateKey(rand.Reader, 2048))

	p := startOIDCProvider(t,
		oidcClient{id: "rsa-client", pub: rsaKey.Public(), kid: "rsa-2025"},
		oidcClient{id: "ec-client", pub: p256.Public()},
		oidcClient{id: "ec384-client", pub: p384.Public(), kid: "ec384"},
		oidcClient{id: "workload", pub: federated.Public()},
	)

	upstreamHTTP := &http.Transport{}
	defer upstreamHTTP.CloseIdleConnections()
	tokenHTTP := &http.Transport{}
	defer tokenHTTP.CloseIdleConnections()

	t.Run("the upstream refuses a token the provider did not issue", func(t *testing.T) {
		client := transport.Wrap(&http.Client{Transport: upstreamHTTP}, credential.Static("not-issued-by-the-provider"), "", nil)
		if st, _, err := callUpstream(t, client, p); err != nil || st != http.StatusUnauthorized {
			t.Fatalf("got %d, %v; want 401", st, err)
		}
	})

	keyCases := []struct {
		name     string
		client   string
		key      crypto.Signer
		kid      string
		method   string
		audience string
		cert     bool
	}{
		{name: "RSA, RS256, kid", client: "rsa-client", key: rsaKey, kid: "rsa-2025"},
		{name: "hidden RSA, PS256, kid, certificate, issuer audience", client: "rsa-client", key: testkey.Hide(rsaKey), kid: "rsa-2025", method: "PS256", audience: p.issuer, cert: true},
		{name: "ECDSA P-256", client: "ec-client", key: p256},
		{name: "hidden ECDSA P-384, kid", client: "ec384-client", key: testkey.Hide(p384), kid: "ec384"},
	}
	for _, tc := range keyCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := credential.OAuth2Config{
				ClientID: tc.client, TokenURL: p.tokenURL, HTTPClient: &http.Client{Transport: tokenHTTP},
				PrivateKey: tc.key, KeyID: tc.kid, SigningMethod: tc.method, AssertionAudience: tc.audience,
			}
			if tc.cert {
				cfg.Certificate = testkey.SelfSigned(t, tc.key)
			}
			cred, err := credential.NewOAuth2(cfg)
			if err != nil {
				t.Fatalf("NewOAuth2: %v", err)
			}
			checkFlow(t, p, cred, upstreamHTTP, tc.client)
		})
	}

	t.Run("AssertionFromFile, rotated before every token request", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "token")
		// The platform (a kubelet, a CI runner) writes a new token to the
		// file; here, before each token request, since the provider takes
		// an assertion once only.
		// rotate runs on the credential's goroutine as well as the test's,
		// so it returns its error for the token request to fail with.
		rotate := func() error {
			now := time.Now()
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
				"iss": "workload", "sub": "workload", "aud": p.tokenURL,
				"jti": rand.Text(), "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			})
			s, err := tok.SignedString(federated)
			if err != nil {
				return err
			}
			return os.WriteFile(path, []byte(s+"\n"), 0o600)
		}
		if err := rotate(); err != nil {
			t.Fatal(err)
		}
		fromFile := credential.AssertionFromFile(path)
		cred, err := credential.NewOAuth2(credential.OAuth2Config{
			ClientID: "workload", TokenURL: p.tokenURL, HTTPClient: &http.Client{Transport: tokenHTTP},
			ClientAssertion: func(ctx context.Context) (string, error) {
				a, err := fromFile(ctx)
				if err != nil {
					return "", err
				}
				if err := rotate(); err != nil {
					return "", fmt.Errorf("writing the next assertion: %w", err)
				}
				return a, nil
			},
		})
		if err != nil {
			t.Fatalf("NewOAuth2: %v", err)
		}
		checkFlow(t, p, cred, upstreamHTTP, "workload")

		// The same assertion twice is refused: the provider does check.
		stale, err := credential.NewOAuth2(credential.OAuth2Config{
			ClientID: "workload", TokenURL: p.tokenURL, HTTPClient: &http.Client{Transport: tokenHTTP},
			ClientAssertion: credential.AssertionFromFile(path),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stale.GetToken(context.Background(), ""); err != nil {
			t.Fatalf("the first use of an assertion: %v", err)
		}
		_, err = stale.GetToken(context.Background(), "")
		checkInvalidClient(t, err)
	})

	refused := []struct {
		name string
		cfg  credential.OAuth2Config
	}{
		{"a key the provider does not know", credential.OAuth2Config{ClientID: "rsa-client", PrivateKey: unknown, KeyID: "rsa-2025"}},
		{"no kid where one was registered", credential.OAuth2Config{ClientID: "rsa-client", PrivateKey: rsaKey}},
		{"a kid where none was registered", credential.OAuth2Config{ClientID: "ec-client", PrivateKey: p256, KeyID: "ec"}},
		{"an audience with a trailing slash", credential.OAuth2Config{ClientID: "ec-client", PrivateKey: p256, AssertionAudience: p.issuer + "/"}},
		{"an audience naming localhost for 127.0.0.1", credential.OAuth2Config{ClientID: "ec-client", PrivateKey: p256, AssertionAudience: strings.Replace(p.tokenURL, "127.0.0.1", "localhost", 1)}},
		{"an unknown client", credential.OAuth2Config{ClientID: "nobody", PrivateKey: p256}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.TokenURL, tc.cfg.HTTPClient = p.tokenURL, &http.Client{Transport: tokenHTTP}
			cred, err := credential.NewOAuth2(tc.cfg)
			if err != nil {
				t.Fatalf("NewOAuth2: %v", err)
			}
			client := transport.Wrap(&http.Client{Transport: upstreamHTTP}, cred, "llm.invoke", &transport.Options{FetchTimeout: testutil.HangTimeout})
			_, _, err = callUpstream(t, client, p)
			var fe *transport.FetchError
			if !errors.As(err, &fe) {
				t.Errorf("got error %v; want a *transport.FetchError", err)
			}
			checkInvalidClient(t, err)
		})
	}
}

// checkFlow gets a token from the provider through the transport and has
// the upstream accept it, then fetches a second token directly.
func checkFlow(t *testing.T, p *oidcProvider, cred *credential.OAuth2, upstreamHTTP http.RoundTripper, clientID string) {
	t.Helper()
	client := transport.Wrap(&http.Client{Transport: upstreamHTTP}, cred, "llm.invoke", &transport.Options{FetchTimeout: testutil.HangTimeout})
	st, ans, err := callUpstream(t, client, p)
	if err != nil || st != http.StatusOK {
		t.Fatalf("through the transport: got %d, %v; want 200 from the upstream", st, err)
	}
	if ans.ClientID != clientID || ans.Scope != "llm.invoke" {
		t.Errorf("the upstream saw a token of client %q with scope %q; want %q and llm.invoke", ans.ClientID, ans.Scope, clientID)
	}
	// A second token request needs a second assertion: the provider
	// refuses a jti it has seen.
	tok, err := cred.GetToken(context.Background(), "llm.invoke")
	if err != nil {
		t.Fatalf("a second token: %v", err)
	}
	if tok.Token == "" || time.Until(tok.ExpiresOn) < time.Minute {
		t.Errorf("a second token expiring %v; want a token with its expiry", tok.ExpiresOn)
	}
}

// checkInvalidClient checks that err holds the provider's invalid_client
// answer.
func checkInvalidClient(t *testing.T, err error) {
	t.Helper()
	var oe *credential.OAuth2Error
	if !errors.As(err, &oe) {
		t.Fatalf("got error %v; want one holding a *credential.OAuth2Error", err)
	}
	if oe.Code != "invalid_client" || oe.StatusCode != http.StatusUnauthorized {
		t.Errorf("got %d %q (%s); want 401 invalid_client", oe.StatusCode, oe.Code, oe.Description)
	}
}
