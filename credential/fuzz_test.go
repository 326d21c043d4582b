package credential

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The client of the fuzz target. Tokens that contain fuzzTokenMark and
// have at least checkedTokenLen bytes are checked not to leak: the mark
// never occurs in the fixed text of a message, so any occurrence in an
// error is a leak, and shorter values are too short to tell from words.
const (
	fuzzClientID    = "fuzz-client"
	fuzzSecret      = "Fz9s3cr3tVal"
	fuzzTokenMark   = "Zq9"
	checkedTokenLen = 8
)

// tokenFields are the fields of a token answer that carry tokens.
var tokenFields = map[string]bool{"access_token": true, "refresh_token": true, "id_token": true}

// issuedTokens returns the tokens an answer carries, found without the
// package's decoder, so that a decoder that misses one cannot also excuse
// its leak: the string values of top-level token fields of a JSON object,
// whatever the declared type (servers mislabel JSON), read field by field
// with encoding/json up to the first syntax error, so that a token before a
// cut or a broken part still counts, each both decoded and as written with
// its escapes; and, when the type is form-encoded, every value of a token
// field of a body that net/url parses.
func issuedTokens(contentType string, body []byte) []string {
	var out []string
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
	fields:
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				break
			}
			key, _ := k.(string)
			start := dec.InputOffset()
			v, err := dec.Token()
			if err != nil {
				break
			}
			switch v := v.(type) {
			case string:
				if tokenFields[key] {
					raw := strings.TrimLeft(string(body[start:dec.InputOffset()]), " \t\r\n:")
					out = append(out, v, strings.TrimSuffix(strings.TrimPrefix(raw, `"`), `"`))
				}
			case json.Delim:
				// Skip a nested object or array: its fields are not the
				// answer's.
				for depth := 1; depth > 0; {
					t, err := dec.Token()
					if err != nil {
						break fields
					}
					switch t {
					case json.Delim('{'), json.Delim('['):
						depth++
					case json.Delim('}'), json.Delim(']'):
						depth--
					}
				}
			}
		}
	}
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
		if vals, err := url.ParseQuery(string(body)); err == nil {
			for k, vs := range vals {
				if tokenFields[k] {
					out = append(out, vs...)
				}
			}
		}
	}
	return out
}

// FuzzParseTokenResponse feeds arbitrary answers of a token endpoint to
// the code that turns status, headers and body into a token or an error.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, "application/json", "", "", []byte(`{"access_token":"aZq9bcdefgh","token_type":"Bearer","expires_in":3600}`))
	f.Add(503, "application/json", "", "Tue, 01 Jan 2030 00:02:00 GMT", []byte(`{"error":"temporarily_unavailable"}`))
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
		tok, err := o.handle(status, h, body, now, o.secrets)

		if err == nil {
			if tok.Token == "" {
				t.Fatalf("success with an empty token")
			}
			if !tok.ExpiresOn.After(now) {
				t.Fatalf("success with ExpiresOn %v, not after now %v", tok.ExpiresOn, now)
			}
			// Visible ASCII only, decided rune by rune rather than by the
			// package's own check.
			if strings.IndexFunc(tok.Token, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
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
			if oe.RetryAfter < 0 || retryAfterValue == "" && oe.RetryAfter != 0 {
				t.Fatalf("RetryAfter %v from Retry-After %q; want 0 or more, and 0 without the header", oe.RetryAfter, retryAfterValue)
			}
		}
		leaks := secretForms
		for _, s := range issuedTokens(contentType, body) {
			if len(s) >= checkedTokenLen && strings.Contains(s, fuzzTokenMark) {
				leaks = append(leaks, s, url.QueryEscape(s))
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

// TestIssuedTokens checks the fuzz oracle itself.
func TestIssuedTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, contentType, body string
		want                    []string
	}{
		{"JSON", "application/json", `{"access_token":"A","token_type":"Bearer","refresh_token":"R","id_token":"I"}`, []string{"A", "A", "R", "R", "I", "I"}},
		{"escaped, as written too", "text/plain", ` {"access_token" : "a\/b\u0041"}`, []string{"a/bA", `a\/b\u0041`}},
		{"cut after the token", "application/json", `{"access_token":"A","tok`, []string{"A", "A"}},
		{"broken after the token", "", `{"access_token":"A" "x":1}`, []string{"A", "A"}},
		{"data after the object", "", `{"access_token":"A"} trailing`, []string{"A", "A"}},
		{"nested fields are not the answer's", "", `{"error":{"access_token":"N"},"x":[{"id_token":"M"}],"id_token":"I"}`, []string{"I", "I"}},
		{"not a string", "", `{"access_token":7}`, nil},
		{"cut inside the token", "", `{"access_token":"AB`, nil},
		{"form", "application/x-www-form-urlencoded; charset=utf-8", "access_token=A%2Bb&access_token=C&x=1", []string{"A+b", "C"}},
		{"form text, not form type", "text/plain", "access_token=A", nil},
		{"invalid form", "application/x-www-form-urlencoded", "access_token=A&%zz", nil},
	}
	for _, tt := range tests {
		if got := issuedTokens(tt.contentType, []byte(tt.body)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: issuedTokens(%q, %q) = %q; want %q", tt.name, tt.contentType, tt.body, got, tt.want)
		}
	}
}

// TestWithTokensIn checks that the value of every token field written in
// an answer is scrubbed wherever else it appears, also when the answer
// does not decode.
func TestWithTokensIn(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("L", maxKeptBody+1)
	tests := []struct {
		name, body string
		scrubbed   []string // each must become REDACTED in an echo
		kept       []string // each must survive
	}{
		{"cut JSON", `{"x":"tok-AAAAAAAA","refresh_token":"tok-AAAAAAAA`, []string{"tok-AAAAAAAA"}, nil},
		{"spaced and escaped JSON", `{"id_token" : "tok\/BBBBBBBB"}`, []string{"tok/BBBBBBBB", `tok\/BBBBBBBB`}, nil},
		{"both of two fields", `{"access_token":"tok-CCCCCCCC","access_token":"tok-DDDDDDDD"}`, []string{"tok-CCCCCCCC", "tok-DDDDDDDD"}, nil},
		{"form", "x=1;access_token=tok%2BEEEEEEEE&refresh_token=tok-FFFFFFFF", []string{"tok+EEEEEEEE", "tok%2BEEEEEEEE", "tok-FFFFFFFF"}, nil},
		{"not a field", `{"my_access_token":"word-GGGGGGGG","xaccess_token":"word-HHHHHHHH"} xaccess_token=word-IIIIIIII`, nil,
			[]string{"word-GGGGGGGG", "word-HHHHHHHH", "word-IIIIIIII"}},
		{"longer than any kept text", `{"access_token":"` + long + `"}`, nil, []string{long[:100]}},
	}
	for _, tt := range tests {
		sec := newScrubber("id", "secret-value").withTokensIn(tt.body)
		for _, s := range tt.scrubbed {
			if got := sec.scrub("echo " + s + " echo"); got != "echo REDACTED echo" {
				t.Errorf("%s: scrub of an echo of %q: got %q; want it REDACTED", tt.name, s, got)
			}
		}
		for _, s := range tt.kept {
			if got := sec.scrub(s); got != s {
				t.Errorf("%s: scrub(%q) = %q; want it kept", tt.name, s, got)
			}
		}
	}
}
