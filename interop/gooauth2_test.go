package interop_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4"
	oauth2errors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"

	"github.com/proxyauth/proxyauth/credential"
)

// The client of the go-oauth2 server; the secret has characters that
// RFC 6749 section 2.3.1 form-urlencodes before HTTP Basic.
const (
	goClientID = "svc:reporting"
	goSecret   = "s3cr+t/=%&é"
)

// goOAuth2Server is a go-oauth2/oauth2 authorization server on loopback
// with one client, counting how clients authenticated.
type goOAuth2Server struct {
	*httptest.Server
	requests    atomic.Int64 // all token requests
	basic, form atomic.Int64 // those that authenticated so
}

// newGoOAuth2Server starts the server. With basicToo it accepts the client
// in HTTP Basic or in form fields; without, in form fields only, as some
// servers do.
func newGoOAuth2Server(t *testing.T, basicToo bool) *goOAuth2Server {
	t.Helper()
	manager := manage.NewDefaultManager()
	manager.MapTokenStorage(newMemTokenStore())
	clients := store.NewClientStore()
	if err := clients.Set(goClientID, &models.Client{ID: goClientID, Secret: goSecret, Domain: "http://localhost"}); err != nil {
		t.Fatal(err)
	}
	manager.MapClientStorage(clients)

	s := &goOAuth2Server{}
	srv := server.NewDefaultServer(manager)
	srv.SetAllowedGrantType(oauth2.ClientCredentials)
	srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if id, secret, ok := r.BasicAuth(); ok && basicToo {
			s.basic.Add(1)
			// go-oauth2's own ClientBasicHandler does not undo the
			// form-urlencoding that RFC 6749 section 2.3.1 requires.
			id, err1 := url.QueryUnescape(id)
			secret, err2 := url.QueryUnescape(secret)
			if err1 != nil || err2 != nil {
				return "", "", oauth2errors.ErrInvalidClient
			}
			return id, secret, nil
		}
		if r.Form.Get("client_id") != "" {
			s.form.Add(1)
		}
		return server.ClientFormHandler(r)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		_ = srv.HandleTokenRequest(w, r)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *goOAuth2Server) tokenURL() string { return s.URL + "/oauth/token" }

func TestOAuth2AgainstGoOAuth2Server(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		style     credential.AuthStyle
		basicToo  bool
		wantBasic int64
		wantForm  int64
		wantAll   int64
	}{
		{"header", credential.AuthStyleHeader, true, 2, 0, 2},
		{"params", credential.AuthStyleParams, true, 0, 2, 2},
		{"auto, server takes Basic", credential.AuthStyleAuto, true, 2, 0, 2},
		// The first request's Basic is refused; the form works and is
		// remembered: 1 refused + 2 form requests.
		{"auto, server takes the form only", credential.AuthStyleAuto, false, 0, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newGoOAuth2Server(t, tt.basicToo)
			o, err := credential.NewOAuth2(credential.OAuth2Config{
				ClientID:     goClientID,
				ClientSecret: goSecret,
				TokenURL:     srv.tokenURL(),
				AuthStyle:    tt.style,
				HTTPClient:   srv.Client(),
			})
			if err != nil {
				t.Fatalf("NewOAuth2: got error %v; want none", err)
			}
			seen := map[string]bool{}
			for i := range 2 {
				before := time.Now()
				tok, err := o.GetToken(context.Background(), "read write")
				if err != nil {
					t.Fatalf("GetToken %d: got error %v; want none", i+1, err)
				}
				if tok.Token == "" || seen[tok.Token] {
					t.Errorf("GetToken %d: got a repeated or empty token; want a new one", i+1)
				}
				seen[tok.Token] = true
				// go-oauth2 issues client credentials tokens for two hours.
				if lo := before.Add(2 * time.Hour); tok.ExpiresOn.Before(lo) || tok.ExpiresOn.After(time.Now().Add(2*time.Hour+time.Second)) {
					t.Errorf("ExpiresOn: got %v; want about %v", tok.ExpiresOn, lo)
				}
			}
			if got := srv.basic.Load(); got != tt.wantBasic {
				t.Errorf("requests with HTTP Basic: got %d; want %d", got, tt.wantBasic)
			}
			if got := srv.form.Load(); got != tt.wantForm {
				t.Errorf("requests with form fields: got %d; want %d", got, tt.wantForm)
			}
			if got := srv.requests.Load(); got != tt.wantAll {
				t.Errorf("token requests: got %d; want %d", got, tt.wantAll)
			}
		})
	}
}

func TestOAuth2WrongSecretAgainstGoOAuth2Server(t *testing.T) {
	t.Parallel()
	const wrong = "wrong+secret/value"
	for _, style := range []credential.AuthStyle{credential.AuthStyleHeader, credential.AuthStyleParams, credential.AuthStyleAuto} {
		t.Run(style.String(), func(t *testing.T) {
			t.Parallel()
			srv := newGoOAuth2Server(t, true)
			o, err := credential.NewOAuth2(credential.OAuth2Config{
				ClientID:     goClientID,
				ClientSecret: wrong,
				TokenURL:     srv.tokenURL(),
				AuthStyle:    style,
				HTTPClient:   srv.Client(),
			})
			if err != nil {
				t.Fatalf("NewOAuth2: got error %v; want none", err)
			}
			_, err = o.GetToken(context.Background(), "")
			var oe *credential.OAuth2Error
			if !errors.As(err, &oe) {
				t.Fatalf("GetToken: got error %v; want an *OAuth2Error", err)
			}
			if oe.Code != "invalid_client" || oe.StatusCode != http.StatusUnauthorized {
				t.Errorf("OAuth2Error: got %d %q; want 401 %q", oe.StatusCode, oe.Code, "invalid_client")
			}
			for _, s := range []string{err.Error(), oe.Error()} {
				if strings.Contains(s, wrong) || strings.Contains(s, url.QueryEscape(wrong)) {
					t.Errorf("error %q contains the client secret", s)
				}
				if !strings.Contains(s, "invalid_client") {
					t.Errorf("error %q does not name the code invalid_client", s)
				}
			}
			if !strings.Contains(err.Error(), srv.tokenURL()) || !strings.Contains(err.Error(), goClientID) {
				t.Errorf("error %q does not name the token URL and the client ID", err)
			}
			wantRequests := int64(1)
			if style == credential.AuthStyleAuto {
				wantRequests = 2 // Basic refused, then the form, whose error is returned
			}
			if got := srv.requests.Load(); got != wantRequests {
				t.Errorf("token requests: got %d; want %d", got, wantRequests)
			}
		})
	}
}

// memTokenStore is an in-memory oauth2.TokenStore. go-oauth2's own
// NewMemoryTokenStore runs a buntdb goroutine that it has no way to stop,
// which goleak would report.
type memTokenStore struct {
	mu sync.Mutex
	m  map[string]oauth2.TokenInfo // by access, refresh and code
}

func newMemTokenStore() *memTokenStore { return &memTokenStore{m: map[string]oauth2.TokenInfo{}} }

func (s *memTokenStore) Create(_ context.Context, info oauth2.TokenInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []string{info.GetAccess(), info.GetRefresh(), info.GetCode()} {
		if k != "" {
			s.m[k] = info
		}
	}
	return nil
}

func (s *memTokenStore) remove(k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memTokenStore) get(k string) (oauth2.TokenInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k], nil
}

func (s *memTokenStore) RemoveByCode(_ context.Context, code string) error { return s.remove(code) }
func (s *memTokenStore) RemoveByAccess(_ context.Context, access string) error {
	return s.remove(access)
}
func (s *memTokenStore) RemoveByRefresh(_ context.Context, refresh string) error {
	return s.remove(refresh)
}
func (s *memTokenStore) GetByCode(_ context.Context, code string) (oauth2.TokenInfo, error) {
	return s.get(code)
}
func (s *memTokenStore) GetByAccess(_ context.Context, access string) (oauth2.TokenInfo, error) {
	return s.get(access)
}
func (s *memTokenStore) GetByRefresh(_ context.Context, refresh string) (oauth2.TokenInfo, error) {
	return s.get(refresh)
}
