package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// TokenServerConfig configures a TokenServer. Zero fields take defaults.
type TokenServerConfig struct {
	ClientID     string        // "demo-client"
	ClientSecret string        // "demo-secret"
	Lifetime     time.Duration // of each token; 1 hour
	// LifetimeFunc, if set, gives the lifetime of the n-th token issued
	// (numbered from 1) and overrides Lifetime, so that a test can mix
	// short and long tokens. A result below one second counts as one.
	// It is called one token at a time and must not call the server.
	LifetimeFunc func(n int64) time.Duration
	Latency      time.Duration // added to every token request; none
	// Fail, if set, is asked before each token request (numbered from 1)
	// whether to fail it: a non-zero status is answered with body.
	Fail func(n int64) (status int, body string)
	// Now is the server's clock; nil: time.Now.
	Now func() time.Time
	// OnEvent, if set, hears of every token issued or refused (never the
	// token itself).
	OnEvent func(Event)
}

// Event is something the token server did.
type Event struct {
	Time    time.Time
	Kind    string // "issued", "refused", "revoked", "fault"
	Status  int
	Expires time.Time
}

// TokenServer is an OAuth2 token endpoint for the client credentials grant
// (RFC 6749 section 4.4). It accepts the client's credentials as HTTP Basic
// or as form fields, issues opaque random tokens and remembers them, so that
// a resource server can check that a token is genuine, unexpired and not
// revoked.
type TokenServer struct {
	URL string // the token URL

	cfg      TokenServerConfig
	srv      *httptest.Server
	requests atomic.Int64
	issued   atomic.Int64
	down     atomic.Int32 // status to answer while down; 0: up
	fault    atomic.Pointer[http.Handler]

	mu     sync.Mutex
	tokens map[string]*grant
	order  []string // the tokens in order of issue
}

type grant struct {
	expires time.Time
	revoked bool
}

// NewTokenServer starts a token server on a loopback port.
func NewTokenServer(cfg TokenServerConfig) *TokenServer {
	if cfg.ClientID == "" {
		cfg.ClientID = "demo-client"
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = "demo-secret"
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &TokenServer{cfg: cfg, tokens: map[string]*grant{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveToken))
	s.URL = s.srv.URL + "/oauth2/token"
	return s
}

// ClientID and ClientSecret return the credentials the server accepts.
func (s *TokenServer) ClientID() string     { return s.cfg.ClientID }
func (s *TokenServer) ClientSecret() string { return s.cfg.ClientSecret }

// Close shuts the server down.
func (s *TokenServer) Close() { s.srv.Close() }

// Requests returns how many token requests arrived.
func (s *TokenServer) Requests() int64 { return s.requests.Load() }

// Issued returns how many tokens were issued.
func (s *TokenServer) Issued() int64 { return s.issued.Load() }

// DownRetryAfter is the Retry-After of the answers while the server is
// down (SetDown).
const DownRetryAfter = time.Second

// SetDown makes every token request fail with status (503, say), with a
// Retry-After of DownRetryAfter, until SetDown(0).
func (s *TokenServer) SetDown(status int) { s.down.Store(int32(status)) }

// SetFault makes h answer every token request, before any check, until
// SetFault(nil); [Faults] has the usual ones. Requests still count, and
// each fires an Event of kind "fault".
func (s *TokenServer) SetFault(h http.Handler) {
	if h == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&h)
}

// Valid reports whether token was issued here, has not expired and has not
// been revoked.
func (s *TokenServer) Valid(token string) bool {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.tokens[token]
	return g != nil && !g.revoked && now.Before(g.expires)
}

// Tokens returns every token issued so far, in order of issue, so that a
// test can revoke one or look for them where they must not appear.
func (s *TokenServer) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

// Known reports whether token was ever issued here.
func (s *TokenServer) Known(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[token] != nil
}

// Revoke revokes token, if it was issued here.
func (s *TokenServer) Revoke(token string) {
	s.mu.Lock()
	g := s.tokens[token]
	if g != nil {
		g.revoked = true
	}
	s.mu.Unlock()
	if g != nil {
		s.event(Event{Kind: "revoked", Expires: g.expires})
	}
}

// RevokeAll revokes every token issued so far.
func (s *TokenServer) RevokeAll() {
	s.mu.Lock()
	for _, g := range s.tokens {
		g.revoked = true
	}
	s.mu.Unlock()
	s.event(Event{Kind: "revoked"})
}

func (s *TokenServer) event(e Event) {
	if s.cfg.OnEvent != nil {
		e.Time = s.cfg.Now()
		s.cfg.OnEvent(e)
	}
}

// ServeHTTP serves the token endpoint, so that a test can put it behind a
// handler of its own that injects faults the configuration cannot express
// (a stalled or trickling answer, a dropped connection). Requests count
// wherever they arrive from.
func (s *TokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serveToken(w, r) }

func (s *TokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if s.cfg.Latency > 0 {
		select {
		case <-time.After(s.cfg.Latency):
		case <-r.Context().Done():
			return
		}
	}
	refuse := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
		s.event(Event{Kind: "refused", Status: status})
	}
	if h := s.fault.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		s.event(Event{Kind: "fault"})
		return
	}
	if st := s.down.Load(); st != 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(DownRetryAfter/time.Second)))
		refuse(int(st), "temporarily_unavailable", "the token service is down")
		return
	}
	if s.cfg.Fail != nil {
		if status, body := s.cfg.Fail(n); status != 0 {
			w.WriteHeader(status)
			fmt.Fprint(w, body)
			s.event(Event{Kind: "refused", Status: status})
			return
		}
	}
	if r.Method != http.MethodPost {
		refuse(http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if !credMatch(id, s.cfg.ClientID, basic) || !credMatch(secret, s.cfg.ClientSecret, basic) {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		refuse(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		refuse(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
		return
	}

	token := newToken()
	s.mu.Lock()
	nth := int64(len(s.order)) + 1
	life := s.cfg.Lifetime
	if s.cfg.LifetimeFunc != nil {
		life = max(s.cfg.LifetimeFunc(nth), time.Second)
	}
	expires := s.cfg.Now().Add(life)
	s.tokens[token] = &grant{expires: expires}
	s.order = append(s.order, token)
	s.mu.Unlock()
	s.issued.Add(1)
	s.event(Event{Kind: "issued", Status: http.StatusOK, Expires: expires})
	// expires_in is whole seconds, rounded down: the client believes the
	// token expires no later than it does here.
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   max(int64(life/time.Second), 1),
	})
}

// credMatch reports whether got, sent by a client, is want. RFC 6749
// section 2.3.1 has clients form-encode the ID and secret before HTTP Basic;
// many send them as they are, so both are accepted.
func credMatch(got, want string, basic bool) bool {
	if got == want {
		return true
	}
	if !basic {
		return false
	}
	u, err := url.QueryUnescape(got)
	return err == nil && u == want
}

func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "at_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
