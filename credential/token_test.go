package credential_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/proxyauth/proxyauth/credential"
)

const secretToken = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.sEcReT-tOkEn"

// tokenLeaks reports whether text shows the token in any encoding that a
// verb could produce.
func tokenLeaks(text string) bool {
	for _, s := range []string{secretToken, "sEcReT-tOkEn", hex.EncodeToString([]byte(secretToken)), strings.ToUpper(hex.EncodeToString([]byte(secretToken)))} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

func TestAccessTokenFmtRedacts(t *testing.T) {
	t.Parallel()
	tok := credential.AccessToken{
		Token:     secretToken,
		ExpiresOn: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		RefreshOn: time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC),
	}
	type holder struct {
		Name string
		Tok  credential.AccessToken
		Ptr  *credential.AccessToken
	}
	values := map[string]any{
		"value":          tok,
		"pointer":        &tok,
		"struct":         holder{Name: "h", Tok: tok, Ptr: &tok},
		"struct pointer": &holder{Tok: tok},
		"slice":          []credential.AccessToken{tok, tok},
		"map":            map[string]credential.AccessToken{"k": tok},
		"any":            []any{tok, &tok},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.4s", "%-40v", "%08x"}
	for name, v := range values {
		for _, verb := range verbs {
			t.Run(name+" "+verb, func(t *testing.T) {
				if got := fmt.Sprintf(verb, v); tokenLeaks(got) {
					t.Errorf("Sprintf(%q): got %s; want the token redacted", verb, got)
				}
			})
		}
	}
	if got, want := fmt.Sprint(tok), "AccessToken{Token:REDACTED ExpiresOn:2030-01-02T03:04:05Z RefreshOn:2030-01-02T02:04:05Z}"; got != want {
		t.Errorf("Sprint: got %s; want %s", got, want)
	}
	if got, want := fmt.Sprintf("%#v", tok), "credential.AccessToken{Token:REDACTED ExpiresOn:2030-01-02T03:04:05Z RefreshOn:2030-01-02T02:04:05Z}"; got != want {
		t.Errorf("%%#v: got %s; want %s", got, want)
	}
	if got, want := fmt.Sprint(credential.AccessToken{}), `AccessToken{Token:"" ExpiresOn:never}`; got != want {
		t.Errorf("Sprint of the zero value: got %s; want %s", got, want)
	}
}

func TestAccessTokenSlogAndJSONRedact(t *testing.T) {
	t.Parallel()
	tok := credential.AccessToken{Token: secretToken, ExpiresOn: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	}
	for name, newHandler := range handlers {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(newHandler(&buf))
			log.Info("token", "tok", tok, "ptr", &tok, "slice", []credential.AccessToken{tok},
				"struct", struct{ T credential.AccessToken }{tok}, slog.Any("any", tok))
			log.With("tok", tok).WithGroup("g").Info("again", "tok", tok)
			if got := buf.String(); tokenLeaks(got) || !strings.Contains(got, "REDACTED") {
				t.Errorf("log: got %s; want the token redacted", got)
			}
		})
	}

	for name, v := range map[string]any{
		"value":   tok,
		"pointer": &tok,
		"struct":  struct{ T credential.AccessToken }{tok},
		"slice":   []credential.AccessToken{tok},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): got error %v; want none", name, err)
		}
		if tokenLeaks(string(b)) {
			t.Errorf("json.Marshal(%s): got %s; want the token redacted", name, b)
		}
	}
	b, _ := json.Marshal(tok)
	if want := `{"token":"REDACTED","expires_on":"2030-01-02T03:04:05Z"}`; string(b) != want {
		t.Errorf("json.Marshal: got %s; want %s", b, want)
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	c := credential.Static(secretToken)
	tok, err := c.GetToken(context.Background(), "any")
	if err != nil || tok.Token != secretToken || !tok.ExpiresOn.IsZero() {
		t.Errorf("GetToken: got %v, %v; want the token that never expires", tok, err)
	}
	if got := fmt.Sprintf("%+v %#v", c, c); tokenLeaks(got) {
		t.Errorf("printed credential %s shows the token", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetToken(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("GetToken with a canceled ctx: got %v; want context.Canceled", err)
	}
}

// tokenSourceFunc adapts a function to an oauth2.TokenSource.
type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

func TestFromTokenSource(t *testing.T) {
	t.Parallel()
	expiry := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cause := &oauth2.RetrieveError{ErrorCode: "invalid_grant"}
	// Without an error code, RetrieveError.Error() shows the whole body,
	// which here echoes the secret.
	bodyCause := &oauth2.RetrieveError{
		Response: &http.Response{StatusCode: http.StatusUnauthorized},
		Body:     []byte("bad client_secret=" + secretToken),
	}
	tests := []struct {
		name    string
		tok     *oauth2.Token
		err     error
		want    credential.AccessToken
		wantErr string // substring; "" for success
	}{
		{"bearer", &oauth2.Token{AccessToken: "a", TokenType: "Bearer", Expiry: expiry}, nil, credential.AccessToken{Token: "a", ExpiresOn: expiry}, ""},
		{"lower-case bearer", &oauth2.Token{AccessToken: "a", TokenType: "bearer", Expiry: expiry}, nil, credential.AccessToken{Token: "a", ExpiresOn: expiry}, ""},
		{"no type, no expiry", &oauth2.Token{AccessToken: "a"}, nil, credential.AccessToken{Token: "a"}, ""},
		{"error passes through", nil, cause, credential.AccessToken{}, "invalid_grant"},
		{"error body kept out", nil, bodyCause, credential.AccessToken{}, "answered 401"},
		{"DPoP refused", &oauth2.Token{AccessToken: secretToken, TokenType: "DPoP"}, nil, credential.AccessToken{}, `type "DPoP", not Bearer`},
		{"MAC refused", &oauth2.Token{AccessToken: secretToken, TokenType: "MAC"}, nil, credential.AccessToken{}, `type "MAC", not Bearer`},
		{"empty token", &oauth2.Token{}, nil, credential.AccessToken{}, "no access token"},
		{"nil token", nil, nil, credential.AccessToken{}, "no access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := credential.FromTokenSource(tokenSourceFunc(func() (*oauth2.Token, error) { return tt.tok, tt.err }))
			got, err := c.GetToken(context.Background(), "ignored")
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("GetToken: got %+v (%q), %v; want %+v, nil", got, got.Token, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("GetToken: got error %v; want one containing %q", err, tt.wantErr)
			}
			if tokenLeaks(err.Error()) {
				t.Errorf("error %q shows the token", err)
			}
			if got != (credential.AccessToken{}) {
				t.Errorf("token with the error: got %v; want the zero AccessToken", got)
			}
			if tt.err != nil {
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) || re != tt.err {
					t.Errorf("errors.As(*oauth2.RetrieveError): got %v; want the source's error", err)
				}
			}
		})
	}

	t.Run("canceled context", func(t *testing.T) {
		t.Parallel()
		called := false
		c := credential.FromTokenSource(tokenSourceFunc(func() (*oauth2.Token, error) {
			called = true
			return &oauth2.Token{AccessToken: "a"}, nil
		}))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.GetToken(ctx, ""); !errors.Is(err, context.Canceled) || called {
			t.Errorf("GetToken: got %v (source called: %v); want context.Canceled without a call", err, called)
		}
	})
}
