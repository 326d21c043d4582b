package credential

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/proxyauth/proxyauth/internal/bearer"
	"github.com/proxyauth/proxyauth/internal/retryafter"
)

// defaultLifetime is the lifetime of a token whose answer has no expires_in
// and which is not a JWT with an exp claim.
const defaultLifetime = time.Hour

// maxLifetime bounds expires_in, so that a silly value cannot overflow a
// time.Duration.
const maxLifetime = math.MaxInt32 * time.Second

// parseTokenResponse turns an answer of a token endpoint (status, headers
// and a body read through a limit of maxBody+1 bytes) into a token, or an
// error: an *OAuth2Error for an error answer, a plain error for a 2xx answer
// that holds no usable token. Errors contain neither the secret nor an
// issued token; the body of a 2xx answer is never echoed, except a snippet
// of an HTML page.
func parseTokenResponse(status int, header http.Header, body []byte, now time.Time, sec *scrubber) (AccessToken, error) {
	cut := len(body) > maxBody
	if cut {
		body = body[:maxBody]
	}
	ans := decodeAnswer(header.Get("Content-Type"), body)
	sec = sec.with(ans.str("access_token"), ans.str("refresh_token"), ans.str("id_token")).withTokensIn(string(body))

	success := status >= 200 && status < 300
	if !success || ans.has("error") {
		return AccessToken{}, newOAuth2Error(status, header, body, now, ans, sec)
	}
	what := "answered " + statusLine(status)
	switch {
	case cut:
		return AccessToken{}, fmt.Errorf("credential: token endpoint %s with more than %d bytes", what, maxBody)
	case ans.err != nil:
		// The JSON error names at most a character of the body.
		return AccessToken{}, fmt.Errorf("credential: token endpoint %s with invalid JSON: %s", what, sec.scrub(ans.err.Error()))
	case ans.fields == nil:
		msg := fmt.Sprintf("credential: token endpoint %s with %s, not a JSON token answer", what, describeType(ans.mediaType))
		if ans.mediaType == "text/html" {
			// A page for people, such as a proxy's sign-in page: a
			// token endpoint does not put tokens there.
			if s := sec.snippet(body); s != "" {
				msg += ": " + strconv.Quote(s)
			}
		}
		return AccessToken{}, errors.New(msg)
	}

	raw, ok := ans.fields["access_token"]
	tok, isString := raw.(string)
	switch {
	case !ok || raw == nil || tok == "":
		return AccessToken{}, fmt.Errorf("credential: token endpoint %s without an access_token", what)
	case !isString:
		return AccessToken{}, fmt.Errorf("credential: token endpoint %s with an access_token that is not a string", what)
	case !bearer.Valid(tok):
		return AccessToken{}, fmt.Errorf("credential: token endpoint %s with an access_token that has characters an Authorization header cannot carry", what)
	}
	if typ, ok := ans.fields["token_type"]; ok && typ != nil {
		s, _ := typ.(string)
		if !strings.EqualFold(s, "Bearer") {
			return AccessToken{}, fmt.Errorf("credential: token endpoint %s with token_type %s, not Bearer: %s",
				what, quoteField(sec, typ), whyNotBearer(s))
		}
	}
	expires, err := expiry(ans.fields["expires_in"], tok, now, sec)
	if err != nil {
		return AccessToken{}, fmt.Errorf("credential: token endpoint %s with %w", what, err)
	}
	return AccessToken{Token: tok, ExpiresOn: expires}, nil
}

func whyNotBearer(typ string) string {
	if strings.EqualFold(typ, "DPoP") {
		return "a DPoP-bound token needs a DPoP proof on every request and cannot be sent as a bearer token"
	}
	return "only bearer tokens can be sent in an Authorization: Bearer header"
}

// quoteField prints a field's value, cut short and scrubbed, for a message.
func quoteField(sec *scrubber, v any) string {
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	// Scrub before cutting, so that no part of a secret is left.
	s = sec.scrub(strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "..."
	}
	return strconv.Quote(s)
}

func describeType(mediaType string) string {
	if mediaType == "" {
		return "a body of no declared type"
	}
	return "a " + mediaType + " body"
}

// answer is a decoded body.
type answer struct {
	mediaType string
	fields    map[string]any // nil when the body is not a JSON object or a form
	err       error          // the JSON error of a body that looks like JSON
}

func (a answer) has(key string) bool {
	v, ok := a.fields[key]
	return ok && v != nil
}

// str returns a string field, or "" when it is absent or not a string.
func (a answer) str(key string) string {
	s, _ := a.fields[key].(string)
	return s
}

// decodeAnswer decodes a form-encoded body (some servers answer so) or a
// body that looks like a JSON object, whatever its declared type, since
// servers often declare text/plain or text/html for JSON.
func decodeAnswer(contentType string, body []byte) answer {
	mt, _, _ := mime.ParseMediaType(contentType)
	ans := answer{mediaType: mt}
	if mt == "application/x-www-form-urlencoded" {
		vals, err := url.ParseQuery(string(body))
		if err == nil {
			ans.fields = make(map[string]any, len(vals))
			for k, v := range vals {
				ans.fields[k] = v[0]
			}
		}
		return ans
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ans
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		ans.err = err
		return ans
	}
	if _, err := dec.Token(); err != io.EOF {
		ans.err = errors.New("data after the JSON object")
		return ans
	}
	ans.fields = fields
	return ans
}

// newOAuth2Error builds the error for an error answer received at now.
func newOAuth2Error(status int, header http.Header, body []byte, now time.Time, ans answer, sec *scrubber) *OAuth2Error {
	var code, desc, uri string
	switch e := ans.fields["error"].(type) {
	case string:
		code = e
	case map[string]any:
		// Some gateways nest the error: {"error":{"code":..,"message":..}}.
		code, _ = e["code"].(string)
		desc, _ = e["message"].(string)
	case nil:
	default:
		b, _ := json.Marshal(e)
		code = string(b)
	}
	if d := ans.str("error_description"); d != "" {
		desc = d
	}
	uri = ans.str("error_uri")
	if code == "" && status == http.StatusUnauthorized {
		// RFC 6749 section 5.2: a 401 is a failed client authentication;
		// such answers often carry only a challenge.
		hcode, hdesc, huri := challengeError(header)
		code = hcode
		if code == "" {
			code = "invalid_client"
		}
		if desc == "" {
			desc = hdesc
		}
		if uri == "" {
			uri = huri
		}
	}
	oe := &OAuth2Error{
		StatusCode:  status,
		Code:        sec.field(code),
		Description: sec.field(desc),
		URI:         sec.field(uri),
		Body:        sec.keepBody(body),
		RetryAfter:  retryafter.Delay(header, now),
	}
	if oe.Code == "" && oe.Description == "" && ans.fields == nil {
		oe.Description = sec.snippet(body)
	}
	return oe
}

// expiry returns when a token expires, from the expires_in field v (a JSON
// number or a numeric string; nil when absent), else from the exp claim of
// a JWT, else after defaultLifetime.
func expiry(v any, tok string, now time.Time, sec *scrubber) (time.Time, error) {
	if v == nil {
		return jwtExpiry(tok, now)
	}
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = strings.TrimSpace(v)
	default:
		return time.Time{}, errors.New("an expires_in that is not a number")
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
		return time.Time{}, fmt.Errorf("expires_in %s, not a number", quoteField(sec, s))
	}
	if secs <= 0 {
		return time.Time{}, fmt.Errorf("expires_in %s: a token that is already expired", quoteField(sec, s))
	}
	d := maxLifetime
	if secs < maxLifetime.Seconds() {
		d = time.Duration(math.Ceil(secs)) * time.Second
	}
	return now.Add(d), nil
}

// jwtExpiry returns the exp claim of tok if it is a JWT (read without
// verifying: the token is meant for the resource server, not for us), else
// now plus defaultLifetime.
func jwtExpiry(tok string, now time.Time) (time.Time, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return now.Add(defaultLifetime), nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return now.Add(defaultLifetime), nil
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims.Exp == "" {
		return now.Add(defaultLifetime), nil
	}
	exp, err := claims.Exp.Float64()
	// Beyond year 5000 the claim is nonsense; treat it as absent.
	if err != nil || math.IsNaN(exp) || exp <= 0 || exp > 95e9 {
		return now.Add(defaultLifetime), nil
	}
	sec, frac := math.Modf(exp)
	t := time.Unix(int64(sec), int64(frac*1e9))
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("no expires_in and a JWT access token that expired at %s", t.UTC().Format(time.RFC3339))
	}
	return t, nil
}
