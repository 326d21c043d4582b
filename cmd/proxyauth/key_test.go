package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// jwtEndpoint is a token endpoint for private_key_jwt and client
// assertions. It checks a signed assertion with the standard library
// against the public key it was given (no JWT library: an oracle apart
// from the one the credential signs with), or takes the assertion that
// the test expects, and issues a token.
type jwtEndpoint struct {
	*httptest.Server
	clientID string
	pub      crypto.PublicKey // nil: compare with want
	kid      string

	mu     sync.Mutex
	want   string   // the assertion expected when pub is nil
	got    []string // assertions received
	issued []string
	errs   []string
}

func newJWTEndpoint(t *testing.T, pub crypto.PublicKey, kid string) *jwtEndpoint {
	t.Helper()
	e := &jwtEndpoint{clientID: "svc-client", pub: pub, kid: kid}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *jwtEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	e.mu.Lock()
	defer e.mu.Unlock()
	a := r.PostForm.Get("client_assertion")
	e.got = append(e.got, a)
	fail := func(format string, args ...any) {
		e.errs = append(e.errs, fmt.Sprintf(format, args...))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client"}`)
	}
	if _, _, basic := r.BasicAuth(); basic || r.PostForm.Has("client_secret") {
		fail("a secret was sent")
		return
	}
	if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.PostForm.Get("client_id") != e.clientID {
		fail("form %v", r.PostForm)
		return
	}
	if e.pub == nil {
		if a != e.want {
			fail("assertion %q; want %q", a, e.want)
			return
		}
	} else if err := e.verify(a, "http://"+r.Host+r.URL.Path); err != nil {
		fail("%v", err)
		return
	}
	tok := fmt.Sprintf("at-%d", len(e.issued)+1)
	e.issued = append(e.issued, tok)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
}

// verify checks a compact JWS: the signature over header.payload with the
// endpoint's key (RS256 or ES256), the kid, and the claims RFC 7523 asks
// for.
func (e *jwtEndpoint) verify(jws, aud string) error {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion has %d parts", len(parts))
	}
	var hdr struct{ Alg, Kid string }
	var claims struct {
		Iss, Sub, Aud, Jti string
		Exp                int64
	}
	for i, v := range []any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			return fmt.Errorf("part %d does not decode", i)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch pub := e.pub.(type) {
	case *rsa.PublicKey:
		if hdr.Alg != "RS256" || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
			return fmt.Errorf("alg %s: the RS256 signature does not verify", hdr.Alg)
		}
	case *ecdsa.PublicKey:
		if hdr.Alg != "ES256" || len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return fmt.Errorf("alg %s: the ES256 signature does not verify", hdr.Alg)
		}
	}
	if hdr.Kid != e.kid {
		return fmt.Errorf("kid %q; want %q", hdr.Kid, e.kid)
	}
	if claims.Iss != e.clientID || claims.Sub != e.clientID || claims.Aud != aud || claims.Jti == "" || claims.Exp < time.Now().Unix() {
		return fmt.Errorf("claims %+v; want iss and sub %q, aud %q, a jti, exp ahead", claims, e.clientID, aud)
	}
	return nil
}

func (e *jwtEndpoint) report(t *testing.T) (got, issued []string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, err := range e.errs {
		t.Errorf("token endpoint: %s", err)
	}
	return append([]string(nil), e.got...), append([]string(nil), e.issued...)
}

// writePEM writes blocks to a file in a temporary directory.
func writePEM(t *testing.T, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokenPrivateKey checks --private-key-file with the three PEM forms
// of a key, and --key-id: the endpoint verifies the signature with the
// public key, and the key's bytes appear in no output.
func TestTokenPrivateKey(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8RSA, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pkcs8EC, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	p256, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey) // stands for the EC PARAMETERS block openssl writes first
	tests := []struct {
		name   string
		pub    crypto.PublicKey
		blocks []*pem.Block
	}{
		{"PKCS #8 RSA", &rsaKey.PublicKey, []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8RSA}}},
		{"PKCS #1 RSA", &rsaKey.PublicKey, []*pem.Block{{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}}},
		{"PKCS #8 EC", &ecKey.PublicKey, []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8EC}}},
		{"SEC 1 EC after parameters", &ecKey.PublicKey, []*pem.Block{{Type: "EC PARAMETERS", Bytes: p256}, {Type: "EC PRIVATE KEY", Bytes: sec1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newJWTEndpoint(t, tt.pub, "key-2026")
			path := writePEM(t, "key.pem", tt.blocks...)
			env := map[string]string{"PROXYAUTH_CLIENT_ID": e.clientID, "PROXYAUTH_KEY_ID": "key-2026"}
			r := runCommand(t, env, "token", "--token-url", e.URL+"/token", "--private-key-file", path)
			got, issued := e.report(t)
			if r.code != exitOK || len(issued) != 1 || r.stdout != issued[0]+"\n" {
				t.Fatalf("exit status %d, stdout %q, stderr %q; want the token", r.code, r.stdout, r.stderr)
			}
			pemText, _ := os.ReadFile(path)
			for _, b := range tt.blocks {
				body := base64.StdEncoding.EncodeToString(b.Bytes)
				if strings.Contains(r.stdout+r.stderr, body[:40]) || strings.Contains(r.stdout+r.stderr, string(pemText[40:80])) {
					t.Errorf("the output shows the key")
				}
			}
			if strings.Contains(r.stdout+r.stderr, got[0]) {
				t.Errorf("the output shows the assertion")
			}
		})
	}
}

// TestTokenAssertionFile checks --assertion-file: the file's content, read
// again for each token request, is the assertion.
func TestTokenAssertionFile(t *testing.T) {
	e := newJWTEndpoint(t, nil, "")
	path := filepath.Join(t.TempDir(), "token")
	env := map[string]string{"PROXYAUTH_CLIENT_ID": e.clientID, "PROXYAUTH_TOKEN_URL": e.URL + "/token", "PROXYAUTH_ASSERTION_FILE": path}
	for i, a := range []string{"eyJ.first-assertion.sig", "eyJ.rotated-assertion.sig"} {
		if err := os.WriteFile(path, []byte(a+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		e.want = a
		e.mu.Unlock()
		r := runCommand(t, env, "token", "--header")
		if want := fmt.Sprintf("Authorization: Bearer at-%d\n", i+1); r.code != exitOK || r.stdout != want {
			t.Errorf("with assertion %d: exit status %d, stdout %q, stderr %q; want %q", i, r.code, r.stdout, r.stderr, want)
		}
		if strings.Contains(r.stderr, a) {
			t.Errorf("stderr shows the assertion")
		}
	}
	e.report(t)
}

// TestKeyAndAssertionErrors checks that a bad key or assertion file, or a
// clash with them, exits with status 2 naming the setting, without the
// file's content.
func TestKeyAndAssertionErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ed8, _ := x509.MarshalPKCS8PrivateKey(edKey)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := writePEM(t, "good.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	junk := write("junk.pem", "not-a-key-content-to-hide")
	broken := write("broken.pem", "-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5LWNvbnRlbnQtdG8taGlkZQ==\n-----END PRIVATE KEY-----\n")
	encrypted := writePEM(t, "enc.pem", &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("opaque-bytes-to-hide")})
	cert := writePEM(t, "cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")})
	weak := writePEM(t, "weak.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})
	ed := writePEM(t, "ed.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: ed8})
	empty := write("empty", " \n")
	assertion := write("assertion", "assertion-content-to-hide")

	base := map[string]string{"PROXYAUTH_TOKEN_URL": "https://login.example.com/token", "PROXYAUTH_CLIENT_ID": "c"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const keyFlag, assertFlag = "--private-key-file / PROXYAUTH_PRIVATE_KEY_FILE", "--assertion-file / PROXYAUTH_ASSERTION_FILE"
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"secret and key", with("PROXYAUTH_CLIENT_SECRET", "s"), []string{"--private-key-file", good}, "PROXYAUTH_CLIENT_SECRET and " + keyFlag + " clash"},
		{"key and assertion", with("PROXYAUTH_ASSERTION_FILE", assertion), []string{"--private-key-file", good}, keyFlag + " and " + assertFlag + " clash"},
		{"all three", with("PROXYAUTH_CLIENT_SECRET", "s", "PROXYAUTH_ASSERTION_FILE", assertion, "PROXYAUTH_PRIVATE_KEY_FILE", good), nil, "PROXYAUTH_CLIENT_SECRET and " + keyFlag + " and " + assertFlag + " clash"},
		{"key id without key", with("PROXYAUTH_CLIENT_SECRET", "s"), []string{"--key-id", "k1"}, "--key-id / PROXYAUTH_KEY_ID: credential: OAuth2Config.KeyID"},
		{"key missing", base, []string{"--private-key-file", filepath.Join(dir, "nope.pem")}, keyFlag + ": open "},
		{"key not PEM", base, []string{"--private-key-file", junk}, "holds no PEM private key"},
		{"key not DER", base, []string{"--private-key-file", broken}, keyFlag + ": " + broken + ": its PRIVATE KEY block does not parse"},
		{"key encrypted", base, []string{"--private-key-file", encrypted}, "holds an encrypted key"},
		{"certificate", base, []string{"--private-key-file", cert}, "holds no PEM private key"},
		{"weak key", base, []string{"--private-key-file", weak}, keyFlag + ": credential: "},
		{"ed25519", base, []string{"--private-key-file", ed}, keyFlag + ": credential: "},
		{"assertion missing", base, []string{"--assertion-file", filepath.Join(dir, "nope")}, assertFlag + ": credential: "},
		{"assertion empty", with("PROXYAUTH_ASSERTION_FILE", empty), nil, "is empty"},
		{"azure and key", map[string]string{"PROXYAUTH_SCOPE": "s", "PROXYAUTH_PRIVATE_KEY_FILE": good}, []string{"--credential", "azure"}, keyFlag + " clashes"},
		{"azure and assertion", map[string]string{"PROXYAUTH_SCOPE": "s"}, []string{"--credential", "azure", "--assertion-file", assertion}, assertFlag + " clashes"},
		{"azure and key id", map[string]string{"PROXYAUTH_SCOPE": "s", "PROXYAUTH_KEY_ID": "k"}, []string{"--credential", "azure"}, "--key-id / PROXYAUTH_KEY_ID clashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCommand(t, tt.env, append([]string{"token"}, tt.args...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit status %d, stderr %q; want %d and %q", r.code, r.stderr, exitUsage, tt.want)
			}
			for _, hidden := range []string{"not-a-key-content-to-hide", "bm90LWEta2V5", "opaque-bytes-to-hide", "assertion-content-to-hide", "MII"} {
				if strings.Contains(r.stderr, hidden) {
					t.Errorf("stderr shows file content %q: %s", hidden, r.stderr)
				}
			}
		})
	}
}
