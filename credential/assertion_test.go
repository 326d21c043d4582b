package credential_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/testkey"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// jws is a compact JWS taken apart by the tests, with nothing of the
// library that made it: base64url and JSON of the standard library.
type jws struct {
	header, claims map[string]any
	signed         string // header.claims, what the signature covers
	sig            []byte
}

// parseJWS splits and decodes a compact JWS. Numbers stay json.Number, so
// that a claim's type is checked too; a string claim that is an array is a
// []any.
func parseJWS(t *testing.T, s string) jws {
	t.Helper()
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion %q has %d parts; want 3", s, len(parts))
	}
	dec := func(what, p string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			t.Fatalf("the %s of the assertion is not base64url without padding: %v", what, err)
		}
		return b
	}
	obj := func(what, p string) map[string]any {
		d := json.NewDecoder(bytes.NewReader(dec(what, p)))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("the %s of the assertion is not a JSON object: %v", what, err)
		}
		return m
	}
	return jws{header: obj("header", parts[0]), claims: obj("claims", parts[1]), signed: parts[0] + "." + parts[1], sig: dec("signature", parts[2])}
}

// verifyJWS checks the signature with the standard library alone.
func verifyJWS(t *testing.T, j jws, pub crypto.PublicKey) {
	t.Helper()
	alg, _ := j.header["alg"].(string)
	hashes := map[string]crypto.Hash{"RS256": crypto.SHA256, "PS256": crypto.SHA256, "ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512}
	h, ok := hashes[alg]
	if !ok {
		t.Fatalf("alg %q is not one the tests know", alg)
	}
	hw := h.New()
	hw.Write([]byte(j.signed))
	digest := hw.Sum(nil)
	var err error
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if alg == "PS256" {
			// EqualsHash, not Auto: RFC 7518 section 3.5 fixes the
			// salt's length to the hash's.
			err = rsa.VerifyPSS(k, h, digest, j.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(k, h, digest, j.sig)
		}
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(j.sig) != 2*size {
			t.Fatalf("%s signature of %d bytes; want %d (R and S of %d bytes each)", alg, len(j.sig), 2*size, size)
		}
		r, s := new(big.Int).SetBytes(j.sig[:size]), new(big.Int).SetBytes(j.sig[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			err = errors.New("ecdsa.Verify: false")
		}
	default:
		t.Fatalf("a public key of type %T", pub)
	}
	if err != nil {
		t.Errorf("the %s signature does not verify with the public key: %v", alg, err)
	}
}

// numClaim returns an integer claim, failing the test if it is missing or
// not an integer.
func numClaim(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %#v; want a number", name, claims[name])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s = %s; want an integer of seconds", name, n)
	}
	return v
}

// assertionCase is one configuration of private_key_jwt.
type assertionCase struct {
	name     string
	key      crypto.Signer
	pub      crypto.PublicKey
	method   string // SigningMethod; "" by key type
	wantAlg  string
	keyID    string
	cert     *x509.Certificate
	audience string // AssertionAudience
}

func assertionCases(t *testing.T) []assertionCase {
	rsaCert, ecCert := testkey.SelfSigned(t, rsaKey()), testkey.SelfSigned(t, ecKeys["P-384"]())
	return []assertionCase{
		{name: "RSA", key: rsaKey(), pub: rsaKey().Public(), wantAlg: "RS256"},
		{name: "RSA, RS256, kid", key: rsaKey(), pub: rsaKey().Public(), method: "RS256", wantAlg: "RS256", keyID: "key-2024"},
		{name: "hidden RSA, PS256, kid, certificate", key: testkey.Hide(rsaKey()), pub: rsaKey().Public(), method: "PS256", wantAlg: "PS256", keyID: "k1", cert: rsaCert},
		{name: "hidden RSA, certificate, issuer audience", key: testkey.Hide(rsaKey()), pub: rsaKey().Public(), wantAlg: "RS256", cert: rsaCert, audience: "https://idp.example"},
		{name: "P-256", key: ecKeys["P-256"](), pub: ecKeys["P-256"]().Public(), wantAlg: "ES256"},
		{name: "hidden P-256, kid", key: testkey.Hide(ecKeys["P-256"]()), pub: ecKeys["P-256"]().Public(), wantAlg: "ES256", keyID: "ec"},
		{name: "hidden P-384, ES384, certificate", key: testkey.Hide(ecKeys["P-384"]()), pub: ecKeys["P-384"]().Public(), method: "ES384", wantAlg: "ES384", cert: ecCert},
		{name: "P-521", key: ecKeys["P-521"](), pub: ecKeys["P-521"]().Public(), wantAlg: "ES512", audience: "issuer-name"},
	}
}

// TestPrivateKeyJWT checks what a token endpoint receives from
// private_key_jwt, field by field: the form, the headers, and every header
// and claim of the assertion, whose signature verifies with the public key.
// Two token requests carry two different assertions.
func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	for _, tc := range assertionCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenEndpoint(t, answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"tok-1234567","token_type":"Bearer","expires_in":60}`))
			o, err := credential.NewOAuth2(credential.OAuth2Config{
				ClientID: testClientID, TokenURL: testTokenURL, HTTPClient: e.client(),
				PrivateKey: tc.key, KeyID: tc.keyID, Certificate: tc.cert, AssertionAudience: tc.audience, SigningMethod: tc.method,
				EndpointParams: url.Values{"resource": {"https://llm.example"}},
			})
			if err != nil {
				t.Fatalf("NewOAuth2: got error %v; want none", err)
			}
			before := time.Now().Unix()
			for range 2 {
				if tok, err := o.GetToken(context.Background(), "read  write"); err != nil || tok.Token != "tok-1234567" {
					t.Fatalf("GetToken: got %v, %v; want the token, nil", tok, err)
				}
			}
			after := time.Now().Unix()
			reqs := e.requests()
			if len(reqs) != 2 {
				t.Fatalf("requests: got %d; want 2", len(reqs))
			}
			jtis := map[string]bool{}
			for i, r := range reqs {
				if r.authorization != "" || len(r.header.Values("Authorization")) != 0 {
					t.Errorf("request %d: Authorization %q; want none", i, r.authorization)
				}
				wantKeys := []string{"client_assertion", "client_assertion_type", "client_id", "grant_type", "resource", "scope"}
				if got := slices.Sorted(maps.Keys(r.form)); !slices.Equal(got, wantKeys) {
					t.Errorf("request %d: form fields %v; want %v (no client_secret)", i, got, wantKeys)
				}
				for k, want := range map[string]string{
					"grant_type": "client_credentials", "client_id": testClientID, "scope": "read write",
					"client_assertion_type": jwtBearer, "resource": "https://llm.example",
				} {
					if got := r.form[k]; len(got) != 1 || got[0] != want {
						t.Errorf("request %d: form %s = %q; want [%q]", i, k, got, want)
					}
				}
				j := parseJWS(t, r.form.Get("client_assertion"))

				wantHeader := map[string]any{"alg": tc.wantAlg, "typ": "JWT"}
				if tc.keyID != "" {
					wantHeader["kid"] = tc.keyID
				}
				if tc.cert != nil {
					s1, s256 := sha1.Sum(tc.cert.Raw), sha256.Sum256(tc.cert.Raw)
					wantHeader["x5t"] = base64.RawURLEncoding.EncodeToString(s1[:])
					wantHeader["x5t#S256"] = base64.RawURLEncoding.EncodeToString(s256[:])
				}
				if !maps.Equal(j.header, wantHeader) {
					t.Errorf("request %d: header %v; want %v", i, j.header, wantHeader)
				}

				wantAud := testTokenURL
				if tc.audience != "" {
					wantAud = tc.audience
				}
				if got := slices.Sorted(maps.Keys(j.claims)); !slices.Equal(got, []string{"aud", "exp", "iat", "iss", "jti", "nbf", "sub"}) {
					t.Errorf("request %d: claims %v; want aud, exp, iat, iss, jti, nbf, sub", i, got)
				}
				for k, want := range map[string]string{"iss": testClientID, "sub": testClientID, "aud": wantAud} {
					// aud must be a JSON string: an array is a []any here.
					if got, ok := j.claims[k].(string); !ok || got != want {
						t.Errorf("request %d: claim %s = %#v; want the string %q", i, k, j.claims[k], want)
					}
				}
				jti, _ := j.claims["jti"].(string)
				if len(jti) < 16 || jtis[jti] {
					t.Errorf("request %d: jti %q; want a new random value of 16 characters or more", i, jti)
				}
				jtis[jti] = true
				iat, nbf, exp := numClaim(t, j.claims, "iat"), numClaim(t, j.claims, "nbf"), numClaim(t, j.claims, "exp")
				if iat < before || iat > after {
					t.Errorf("request %d: iat %d; want the time of the request, in [%d, %d]", i, iat, before, after)
				}
				if nbf > iat {
					t.Errorf("request %d: nbf %d after iat %d", i, nbf, iat)
				}
				if exp <= iat || exp > iat+300 {
					t.Errorf("request %d: exp %d is %d s after iat; want at most 300 s", i, exp, exp-iat)
				}
				verifyJWS(t, j, tc.pub)
			}
			if a, b := reqs[0].form.Get("client_assertion"), reqs[1].form.Get("client_assertion"); a == b {
				t.Error("two token requests carried the same assertion; want a new one for each")
			}
			if s, ok := tc.key.(*testkey.Signer); ok {
				checkSignerOpts(t, s, tc.wantAlg)
			}
		})
	}
}

// checkSignerOpts checks what a crypto.Signer was asked: the hash of the
// algorithm, and PSS with a salt as long as the hash for PS256.
func checkSignerOpts(t *testing.T, s *testkey.Signer, alg string) {
	t.Helper()
	calls := s.Calls()
	if len(calls) == 0 {
		t.Error("the signer was never called")
	}
	for _, o := range calls {
		pss, isPSS := o.(*rsa.PSSOptions)
		switch {
		case alg == "PS256" && (!isPSS || pss.SaltLength != rsa.PSSSaltLengthEqualsHash || pss.Hash != crypto.SHA256):
			t.Errorf("PS256 signer options %#v; want *rsa.PSSOptions with SHA-256 and the salt as long as the hash", o)
		case alg != "PS256" && (isPSS || o.HashFunc() != map[string]crypto.Hash{"RS256": crypto.SHA256, "ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512}[alg]):
			t.Errorf("%s signer options %#v; want the hash alone", alg, o)
		}
	}
}

// TestClientAssertion: the function is called once per token request, its
// assertion goes in the form as it is, with client_id and the assertion
// type, and nothing else authenticates the client.
func TestClientAssertion(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, answer(200, map[string]string{"Content-Type": jsonType}, `{"access_token":"tok-1234567","expires_in":60}`))
	var mu sync.Mutex
	var calls int
	o, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID: testClientID, TokenURL: testTokenURL, HTTPClient: e.client(),
		ClientAssertion: func(ctx context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			return fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.sig-%d", calls), nil
		},
	})
	if err != nil {
		t.Fatalf("NewOAuth2: got error %v; want none", err)
	}
	for range 3 {
		if _, err := o.GetToken(context.Background(), ""); err != nil {
			t.Fatalf("GetToken: got error %v; want none", err)
		}
	}
	reqs := e.requests()
	if len(reqs) != 3 || calls != 3 {
		t.Fatalf("got %d requests and %d calls of ClientAssertion; want 3 and 3", len(reqs), calls)
	}
	for i, r := range reqs {
		want := url.Values{
			"grant_type": {"client_credentials"}, "client_id": {testClientID},
			"client_assertion_type": {jwtBearer}, "client_assertion": {fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.sig-%d", i+1)},
		}
		if !equalValues(r.form, want) {
			t.Errorf("request %d: form %v; want %v", i, r.form, want)
		}
		if len(r.header.Values("Authorization")) != 0 {
			t.Errorf("request %d: Authorization %q; want none", i, r.authorization)
		}
	}
}

// TestClientAssertionErrors: a failing or empty assertion sends nothing and
// is an error that keeps the cause.
func TestClientAssertionErrors(t *testing.T) {
	t.Parallel()
	cause := errors.New("workload token not mounted")
	for _, tt := range []struct {
		name    string
		fn      func(context.Context) (string, error)
		want    string
		wantErr error
	}{
		{"error", func(context.Context) (string, error) { return "", cause }, "client assertion: workload token not mounted", cause},
		{"empty", func(context.Context) (string, error) { return "", nil }, "client assertion: OAuth2Config.ClientAssertion returned an empty assertion", nil},
		{"file", credential.AssertionFromFile("/nonexistent/token"), `client assertion: assertion file "/nonexistent/token": no such file or directory`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenEndpoint(t, answer(200, nil, `{"access_token":"tok"}`))
			o, err := credential.NewOAuth2(credential.OAuth2Config{ClientID: testClientID, TokenURL: testTokenURL, HTTPClient: e.client(), ClientAssertion: tt.fn})
			if err != nil {
				t.Fatal(err)
			}
			_, err = o.GetToken(context.Background(), "")
			want := `credential: OAuth2 token request to ` + testDisplayURL + ` for client_id "` + testClientID + `": ` + tt.want
			if err == nil || err.Error() != want {
				t.Errorf("GetToken: got error %v; want %s", err, want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(err, cause) = false; want true")
			}
			if n := len(e.requests()); n != 0 {
				t.Errorf("requests: got %d; want none", n)
			}
		})
	}
}

// failingSigner is a signer whose Sign fails, as a KMS that is down does.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("kms: key version disabled")
}

// badECSigner returns signatures that are not ASN.1 DER.
type badECSigner struct{ crypto.Signer }

func (badECSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return []byte("not DER"), nil
}

// TestPrivateKeySignerErrors: a signer that fails or returns a malformed
// signature sends nothing and is an error that keeps the cause.
func TestPrivateKeySignerErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		key  crypto.Signer
		want string
	}{
		{"Sign fails", failingSigner{rsaKey()}, "client assertion: OAuth2Config.PrivateKey could not sign (RS256): kms: key version disabled"},
		{"not DER", badECSigner{ecKeys["P-256"]()}, "client assertion: OAuth2Config.PrivateKey returned an ECDSA signature that is not ASN.1 DER"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTokenEndpoint(t, answer(200, nil, `{"access_token":"tok"}`))
			o, err := credential.NewOAuth2(credential.OAuth2Config{ClientID: testClientID, TokenURL: testTokenURL, HTTPClient: e.client(), PrivateKey: tt.key})
			if err != nil {
				t.Fatal(err)
			}
			res := testutil.Recv(t, getTokenAsync(context.Background(), o, ""), "GetToken to return")
			if res.err == nil || !strings.HasSuffix(res.err.Error(), tt.want) {
				t.Errorf("GetToken: got error %v; want one ending in %q", res.err, tt.want)
			}
			if n := len(e.requests()); n != 0 {
				t.Errorf("requests: got %d; want none", n)
			}
		})
	}
}

// TestMutualTLS: with an HTTPClient that carries a TLS client certificate
// and no secret, key or assertion, the token request carries client_id and
// nothing secret (RFC 8705 tls_client_auth), to a server that requires and
// verifies the certificate. A real TLS handshake is the point, so this is
// an httptest TLS server rather than a canned answer.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	clientKey := ecKeys["P-256"]()
	clientCert := testkey.SelfSigned(t, clientKey)
	var (
		mu         sync.Mutex
		seenByTLS  []seenRequest
		peersByTLS [][]*x509.Certificate
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		seenByTLS = append(seenByTLS, seenRequest{method: r.Method, header: r.Header.Clone(), authorization: r.Header.Get("Authorization"), form: r.PostForm})
		peersByTLS = append(peersByTLS, r.TLS.PeerCertificates)
		mu.Unlock()
		w.Header().Set("Content-Type", jsonType)
		io.WriteString(w, `{"access_token":"mtls-bound-token","token_type":"Bearer","expires_in":60}`)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(clientCert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()

	withCert := srv.Client() // trusts the server's certificate
	tr := withCert.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{clientCert.Raw}, PrivateKey: clientKey, Leaf: clientCert}}
	defer tr.CloseIdleConnections()
	o, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID: testClientID, TokenURL: srv.URL + "/oauth2/token", HTTPClient: &http.Client{Transport: tr},
	})
	if err != nil {
		t.Fatalf("NewOAuth2: got error %v; want none", err)
	}
	res := testutil.Recv(t, getTokenAsync(context.Background(), o, "llm"), "GetToken over mutual TLS to return")
	if res.err != nil || res.tok.Token != "mtls-bound-token" {
		t.Fatalf("GetToken: got %v, %v; want the token, nil", res.tok, res.err)
	}
	served := func() ([]seenRequest, [][]*x509.Certificate) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seenByTLS), slices.Clone(peersByTLS)
	}
	seen, peers := served()
	if len(seen) != 1 {
		t.Fatalf("requests: got %d; want 1", len(seen))
	}
	want := url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}, "scope": {"llm"}}
	if !equalValues(seen[0].form, want) {
		t.Errorf("form: got %v; want %v (client_id and nothing secret)", seen[0].form, want)
	}
	if v := seen[0].header.Values("Authorization"); len(v) != 0 {
		t.Errorf("Authorization: got %q; want none", v)
	}
	if len(peers[0]) != 1 || !peers[0][0].Equal(clientCert) {
		t.Errorf("the server saw client certificates %v; want the client's", peers[0])
	}
	if s := fmt.Sprint(o); s != `credential.OAuth2{ClientID:"app 123" ClientAuth:tls_client_auth TokenURL:"`+srv.URL+`/oauth2/token" EndpointParams:[]}` {
		t.Errorf("printed: %s", s)
	}

	// The server refuses a client without the certificate: the test above
	// is not passing for want of a check.
	plain := srv.Client().Transport.(*http.Transport).Clone()
	defer plain.CloseIdleConnections()
	o, err = credential.NewOAuth2(credential.OAuth2Config{ClientID: testClientID, TokenURL: srv.URL + "/oauth2/token", HTTPClient: &http.Client{Transport: plain}})
	if err != nil {
		t.Fatal(err)
	}
	res = testutil.Recv(t, getTokenAsync(context.Background(), o, ""), "GetToken without a certificate to return")
	if seen, _ := served(); res.err == nil || len(seen) != 1 {
		t.Errorf("without a client certificate: got %v, %v and %d requests served; want a TLS error and none served", res.tok, res.err, len(seen)-1)
	}
}

// TestAssertionScrubbed: a token endpoint that echoes the request (the whole
// form, the assertion JSON-escaped, its signature alone) gets no assertion
// into an error, in any form. Each request has its own assertion, and each
// error is scrubbed of its own.
func TestAssertionScrubbed(t *testing.T) {
	t.Parallel()
	echoes := map[string]func(r seenRequest) *http.Response{
		"form in an OAuth2 error": func(r seenRequest) *http.Response {
			b, _ := json.Marshal(map[string]string{"error": "invalid_client", "error_description": "bad assertion in " + r.body})
			return jsonResponse(http.StatusBadRequest, string(b))
		},
		"assertion, JSON with escaped slashes": func(r seenRequest) *http.Response {
			a := strings.ReplaceAll(r.form.Get("client_assertion"), "/", `\/`)
			return jsonResponse(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"jwt `+a+` expired"}`)
		},
		"signature alone in an HTML page": func(r seenRequest) *http.Response {
			a := r.form.Get("client_assertion")
			return response(http.StatusOK, map[string]string{"Content-Type": "text/html"}, "<html><body><p>bad signature "+a[strings.LastIndexByte(a, '.')+1:]+"</p></body></html>")
		},
		"form in a 500": func(r seenRequest) *http.Response {
			return response(http.StatusInternalServerError, map[string]string{"Content-Type": "text/plain"}, "failed on "+r.body)
		},
		"assertion in WWW-Authenticate": func(r seenRequest) *http.Response {
			return response(http.StatusUnauthorized, map[string]string{"WWW-Authenticate": `Bearer error="invalid_client", error_description="` + r.form.Get("client_assertion") + `"`}, "")
		},
	}
	// An assertion made by a function may have any characters: these
	// change under every escaping.
	var n atomic.Int64
	oddAssertion := func(context.Context) (string, error) {
		return fmt.Sprintf("odd+/=&%%<>assertion-%d-%s", n.Add(1), strings.Repeat("x", 20)), nil
	}
	creds := map[string]credential.OAuth2Config{
		"RSA key":        {PrivateKey: rsaKey()},
		"P-521 key":      {PrivateKey: testkey.Hide(ecKeys["P-521"]())},
		"odd assertion":  {ClientAssertion: oddAssertion},
		"assertion file": {ClientAssertion: credential.AssertionFromFile(writeTemp(t, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2lnbmF0dXJlLW9mLXRoZS1maWxl"))},
	}
	for echoName, echo := range echoes {
		for credName, cfg := range creds {
			t.Run(echoName+"/"+credName, func(t *testing.T) {
				t.Parallel()
				e := newTokenEndpoint(t, func(r seenRequest, _ int) *http.Response { return echo(r) })
				cfg.ClientID, cfg.TokenURL, cfg.HTTPClient = testClientID, testTokenURL, e.client()
				o, err := credential.NewOAuth2(cfg)
				if err != nil {
					t.Fatal(err)
				}
				var errs []error
				for range 2 {
					_, err := o.GetToken(context.Background(), "")
					if err == nil {
						t.Fatal("GetToken: got no error; want the echoing answer's")
					}
					errs = append(errs, err)
				}
				var forbidden []string
				for _, r := range e.requests() {
					a := r.form.Get("client_assertion")
					forbidden = append(forbidden, a, url.QueryEscape(a), strings.Trim(string(must(json.Marshal(a))), `"`), a[strings.LastIndexByte(a, '.')+1:])
				}
				for _, err := range errs {
					checkNoLeak(t, err, forbidden...)
					if !strings.Contains(fmt.Sprint(err), "REDACTED") {
						t.Errorf("error %q: want REDACTED where the echo was", err)
					}
				}
			})
		}
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPrivateKeyPrintsNoKey: a config or credential with a key or an
// assertion prints, logs and encodes as JSON nothing of the key or the
// assertion: the key's type, "set", and the fields that are no secret.
func TestPrivateKeyPrintsNoKey(t *testing.T) {
	t.Parallel()
	key := rsaKey()
	const assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcmludCJ9.never-printed-signature"
	keyCfg := credential.OAuth2Config{
		ClientID: testClientID, TokenURL: "https://idp.example/token?tenant=a",
		PrivateKey: key, KeyID: "kid-1", Certificate: testkey.SelfSigned(t, key), AssertionAudience: "https://idp.example", SigningMethod: "PS256",
	}
	assertCfg := credential.OAuth2Config{
		ClientID: testClientID, TokenURL: "https://idp.example/token",
		ClientAssertion: func(context.Context) (string, error) { return assertion, nil },
	}
	keyO, err := credential.NewOAuth2(keyCfg)
	if err != nil {
		t.Fatal(err)
	}
	assertO, err := credential.NewOAuth2(assertCfg)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
		for _, v := range []any{keyCfg, &keyCfg, keyO, assertCfg, assertO, struct{ C credential.OAuth2Config }{keyCfg}, []any{keyCfg, keyO}} {
			texts = append(texts, fmt.Sprintf(verb, v))
		}
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", keyCfg, "o", keyO, "a", assertCfg, "ao", assertO)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", keyCfg, "o", keyO, "a", assertCfg, "ao", assertO)
	texts = append(texts, buf.String(), string(must(json.Marshal(keyCfg))), string(must(json.Marshal(assertCfg))))

	der := must(x509.MarshalPKCS8PrivateKey(key))
	forbidden := []string{
		assertion, "never-printed-signature",
		key.D.String(), key.D.Text(16), key.Primes[0].String(), key.Primes[0].Text(16),
		base64.StdEncoding.EncodeToString(der)[:64], fmt.Sprintf("%x", der)[:64],
	}
	for _, text := range texts {
		for _, s := range forbidden {
			if strings.Contains(text, s) {
				t.Errorf("printed %.200q... contains %.40q", text, s)
			}
		}
	}
	for got, want := range map[string]string{
		fmt.Sprintf("%+v", keyCfg):            `credential.OAuth2Config{ClientID:"app 123" ClientSecret:"" TokenURL:"https://idp.example/token" AuthStyle:Auto EndpointParams:[] HTTPClient:nil PrivateKey:*rsa.PrivateKey KeyID:"kid-1" Certificate:set AssertionAudience:"https://idp.example" SigningMethod:"PS256"}`,
		fmt.Sprintf("%#v", keyO):              `credential.OAuth2{ClientID:"app 123" PrivateKey:*rsa.PrivateKey SigningMethod:PS256 KeyID:"kid-1" Certificate:set AssertionAudience:"https://idp.example" TokenURL:"https://idp.example/token" EndpointParams:[]}`,
		fmt.Sprintf("%v", assertCfg):          `credential.OAuth2Config{ClientID:"app 123" ClientSecret:"" TokenURL:"https://idp.example/token" AuthStyle:Auto EndpointParams:[] HTTPClient:nil ClientAssertion:set}`,
		fmt.Sprintf("%v", assertO):            `credential.OAuth2{ClientID:"app 123" ClientAssertion:set TokenURL:"https://idp.example/token" EndpointParams:[]}`,
		string(must(json.Marshal(keyCfg))):    `{"client_id":"app 123","client_secret":"","token_url":"https://idp.example/token","auth_style":"Auto","endpoint_params":[],"private_key":"*rsa.PrivateKey","key_id":"kid-1","certificate":"set","assertion_audience":"https://idp.example","signing_method":"PS256"}`,
		string(must(json.Marshal(assertCfg))): `{"client_id":"app 123","client_secret":"","token_url":"https://idp.example/token","auth_style":"Auto","endpoint_params":[],"client_assertion":"set"}`,
	} {
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	var rec map[string]any
	var line strings.Builder
	slog.New(slog.NewJSONHandler(&line, nil)).Info("m", "cfg", keyCfg)
	if err := json.Unmarshal([]byte(line.String()), &rec); err != nil {
		t.Fatal(err)
	}
	if got := rec["cfg"].(map[string]any)["private_key"]; got != "*rsa.PrivateKey" {
		t.Errorf("slog private_key: got %v; want *rsa.PrivateKey", got)
	}
}

// TestPrivateKeyJWTConcurrent: concurrent token requests each sign their
// own assertion, through one signer, and all are in flight at once (the
// endpoint holds each until all have arrived).
func TestPrivateKeyJWTConcurrent(t *testing.T) {
	t.Parallel()
	const callers = 32
	arrived := testutil.NewBarrier(t, callers)
	e := newTokenEndpoint(t, func(r seenRequest, n int) *http.Response {
		arrived.Arrive()
		return jsonResponse(200, fmt.Sprintf(`{"access_token":"tok-%d","expires_in":60}`, n))
	})
	signer := testkey.Hide(ecKeys["P-256"]())
	o, err := credential.NewOAuth2(credential.OAuth2Config{ClientID: testClientID, TokenURL: testTokenURL, HTTPClient: e.client(), PrivateKey: signer})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Concurrently(t, callers, "GetToken", func(int) error {
		_, err := o.GetToken(context.Background(), "")
		return err
	})
	arrived.Check(t, "token requests")
	jtis := map[string]bool{}
	for _, r := range e.requests() {
		j := parseJWS(t, r.form.Get("client_assertion"))
		verifyJWS(t, j, ecKeys["P-256"]().Public())
		jtis[j.claims["jti"].(string)] = true
	}
	if signatures := len(signer.Calls()); len(jtis) != callers || signatures != callers {
		t.Errorf("got %d distinct jtis and %d signatures; want %d of each", len(jtis), signatures, callers)
	}
}

// A caller whose context has ended makes the signer do nothing: it may be a
// remote KMS that charges, or throttles, per signature.
func TestPrivateKeyNotUsedAfterContextEnds(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, answer(200, nil, `{"access_token":"tok"}`))
	key := testkey.Hide(rsaKey())
	o, err := credential.NewOAuth2(credential.OAuth2Config{ClientID: testClientID, TokenURL: testTokenURL, HTTPClient: e.client(), PrivateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.GetToken(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("GetToken: got error %v; want context.Canceled", err)
	}
	calls := len(key.Calls())
	if calls != 0 || len(e.requests()) != 0 {
		t.Errorf("after the context ended: %d signatures and %d requests; want none", calls, len(e.requests()))
	}
}
