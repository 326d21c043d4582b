package credential

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The client of the fuzz target. Tokens that contain fuzzTokenMark are
// checked not to leak; the mark never occurs in the fixed text of a message,
// so any occurrence in an error is a leak.
const (
	fuzzClientID  = "fuzz-client"
	fuzzSecret    = "Fz9s3cr3tVal"
	fuzzTokenMark = "Zq9"
)

// FuzzParseTokenResponse feeds arbitrary answers of a token endpoint to
// the code that turns status, headers and body into a token or an error.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, "application/json", "", "", []byte(`{"access_token":"aZq9bcdefgh","token_type":"Bearer","expires_in":3600}`))
	o, err := NewOAuth2(OAuth2Config{ClientID: fuzzClientID, ClientSecret: fuzzSecret, TokenURL: "https://idp.example/oauth2/token?x=1"})
	if err != nil {
		f.Fatal(err)
	}
	secretForms := []string{
		fuzzSecret,
		base64.StdEncoding.EncodeToString([]byte(fuzzClientID + ":" + fuzzSecret)),
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, status int, contentType, wwwAuthenticate, retryAfterValue string, body []byte) {
		status = 100 + (status%500+500)%500
		h := http.Header{}
		for k, v := range map[string]string{"Content-Type": contentType, "Www-Authenticate": wwwAuthenticate, "Retry-After": retryAfterValue} {
			if v != "" {
				h.Set(k, v)
			}
		}
		tok, err := o.handleResponse(status, h, body, now)

		if err == nil {
			if tok.Token == "" {
				t.Fatalf("success with an empty token")
			}
			if !tok.ExpiresOn.After(now) {
				t.Fatalf("success with ExpiresOn %v, not after now %v", tok.ExpiresOn, now)
			}
			if !headerSafe(tok.Token) {
				t.Fatalf("success with a token that cannot go in a header: %q", tok.Token)
			}
			return
		}
		if tok != (AccessToken{}) {
			t.Fatalf("both a token and an error: %v", err)
		}
		texts := []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
		var oe *OAuth2Error
		if errors.As(err, &oe) {
			texts = append(texts, oe.Error(), oe.Code, oe.Description, oe.URI, string(oe.Body), fmt.Sprintf("%+v", *oe))
			if len(oe.Body) > maxKeptBody {
				t.Fatalf("Body of %d bytes, more than %d", len(oe.Body), maxKeptBody)
			}
			if len(oe.Description) > maxKeptField || len(oe.URI) > maxKeptField {
				t.Fatalf("Description or URI longer than %d bytes", maxKeptField)
			}
		}
		leaks := secretForms
		if len(body) <= maxBody {
			ans := decodeAnswer(contentType, body)
			for _, k := range []string{"access_token", "refresh_token", "id_token"} {
				if s := ans.str(k); len(s) >= minIssuedLen && strings.Contains(s, fuzzTokenMark) {
					leaks = append(leaks, s, url.QueryEscape(s))
				}
			}
		}
		for _, text := range texts {
			for _, s := range leaks {
				if strings.Contains(text, s) {
					t.Fatalf("error text contains %q: %s", s, text)
				}
			}
		}
	})
}

// TestScrubWindowShift checks that a secret cut by a window is not left
// in part near the start of what is kept, after the text before it shrank.
func TestScrubWindowShift(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("L", 300) + "-Secret"
	sec := newScrubber("id", long)
	// Many secrets before the cut shrink to REDACTED; then one straddles
	// the end of the window.
	var b strings.Builder
	for b.Len() < maxKeptBody+2*sec.longest {
		b.WriteString(long)
	}
	body := b.String()
	for _, cutAt := range []int{1, 10, 100, len(long) - 1} {
		in := []byte(body + long[:cutAt] + "|" + long[cutAt:] + strings.Repeat("x", 10000))
		kept := string(sec.keepBody(in))
		if strings.Contains(kept, "LLLLLLLLLL") {
			t.Errorf("cut at %d: Body keeps part of the secret: %q", cutAt, kept[max(0, len(kept)-80):])
		}
	}
	// The 8 KiB window of the snippet cuts the secret; the tags before it
	// vanish.
	html := []byte(strings.Repeat("<br>", 2000) + long + " and more")
	if s := sec.snippet(html); strings.Contains(s, "LLLLLLLLLL") {
		t.Errorf("snippet keeps part of the secret: %q", s)
	}
	if got := sec.dropTail(strings.Repeat("€", 1000)); !utf8.ValidString(got) || len(got) < 3000-3*sec.longest-3 {
		t.Errorf("dropTail of 1000 euro signs: got %d bytes; want about %d, valid UTF-8", len(got), 3000-3*sec.longest)
	}
}
