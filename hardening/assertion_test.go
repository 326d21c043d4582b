package hardening_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionFront is a token endpoint that authenticates its client by a
// client assertion signed by a trusted key, in front of a sandbox token
// server, which issues the tokens: the front checks the assertion and
// passes the request on with the sandbox's own client secret, which never
// reaches the client. It records every assertion it gets, and answers with
// a fault of its own, or refuses every assertion while refuseAll, echoing
// the assertion as careless servers do.
type assertionFront struct {
	*httptest.Server
	idp       *sandbox.TokenServer
	clientID  string
	refuseAll atomic.Bool
	fault     atomic.Pointer[http.Handler]

	mu         sync.Mutex
	keys       []jwt.VerificationKey
	assertions []string
}

func newAssertionFront(t *testing.T, clientID string) *assertionFront {
	t.Helper()
	f := &assertionFront{
		clientID: clientID,
		idp:      sandbox.NewTokenServer(sandbox.TokenServerConfig{ClientID: clientID, ClientSecret: "internal-" + randomHex(12)}),
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

func (f *assertionFront) Close() {
	f.Server.Close()
	f.idp.Close()
}

// trust adds keys whose assertions the front accepts.
func (f *assertionFront) trust(keys ...crypto.PublicKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.keys = append(f.keys, k)
	}
}

// setFault makes fault answer every token request; a zero Fault ends it.
func (f *assertionFront) setFault(fault sandbox.Fault) {
	if fault.Handler == nil {
		f.fault.Store(nil)
		return
	}
	f.fault.Store(&fault.Handler)
}

// seen returns every assertion the front got.
func (f *assertionFront) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.assertions)
}

func (f *assertionFront) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	assertion := r.PostForm.Get("client_assertion")
	f.mu.Lock()
	if assertion != "" {
		f.assertions = append(f.assertions, assertion)
	}
	keys := slices.Clone(f.keys)
	f.mu.Unlock()
	if h := f.fault.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	refuse := func(why string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": why + ": " + assertion})
	}
	switch {
	case f.refuseAll.Load():
		refuse("assertion refused")
		return
	case r.Header.Get("Authorization") != "" || r.PostForm.Has("client_secret"):
		refuse("more than one client authentication")
		return
	case r.PostForm.Get("client_assertion_type") != jwtBearer || r.PostForm.Get("client_id") != f.clientID:
		refuse("not a client assertion of the client")
		return
	}
	tok, err := jwt.Parse(assertion, func(*jwt.Token) (any, error) { return jwt.VerificationKeySet{Keys: keys}, nil },
		jwt.WithValidMethods([]string{"RS256", "ES256"}), jwt.WithIssuer(f.clientID), jwt.WithSubject(f.clientID), jwt.WithExpirationRequired())
	if err != nil {
		refuse("bad assertion")
		return
	}
	if aud, ok := tok.Claims.(jwt.MapClaims)["aud"].(string); !ok || (aud != f.URL && aud != f.URL+"/oauth2/token") {
		refuse("wrong audience")
		return
	}
	form := url.Values{}
	for k, v := range r.PostForm {
		if k != "client_assertion" && k != "client_assertion_type" {
			form[k] = v
		}
	}
	form.Set("client_secret", f.idp.ClientSecret())
	body := form.Encode()
	r2 := r.Clone(r.Context())
	r2.Body, r2.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	r2.Form, r2.PostForm = nil, nil
	f.idp.ServeHTTP(w, r2)
}

// signAssertion returns an assertion such as a workload platform hands out.
func signAssertion(t *testing.T, key crypto.Signer, clientID, aud string) string {
	t.Helper()
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": rand.Text(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ecKeyD returns the private scalar of key.
func ecKeyD(key *ecdsa.PrivateKey) *big.Int {
	return new(big.Int).SetBytes(must(key.Bytes()))
}
