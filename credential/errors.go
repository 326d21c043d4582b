package credential

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// OAuth2Error is an error answer of an OAuth2 token endpoint (RFC 6749
// section 5.2): a non-2xx status, or an error field in a 2xx answer.
//
// [OAuth2.GetToken] returns it wrapped in an error that also names the token
// URL, the client ID and any Retry-After of the answer; get it with
// errors.As(err, &oe) where oe is a *OAuth2Error. Error(), Code,
// Description, URI and Body never contain the client secret or the client
// assertion of the request, even when the server echoes them, nor an issued
// token: they are replaced by REDACTED.
type OAuth2Error struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int

	// Code is the error field, such as "invalid_client" or
	// "invalid_scope". For a 401 without one it comes from the error
	// parameter of the WWW-Authenticate header, else it is
	// "invalid_client". Empty when the answer was not an OAuth2 error
	// (an HTML error page, a proxy's answer).
	Code string

	// Description is the error_description field, at most 1 KiB. When the
	// answer was not an OAuth2 error, it is a short snippet of the body
	// as text instead. Empty when there is neither.
	Description string

	// URI is the error_uri field, at most 1 KiB; empty when absent.
	URI string

	// Body is the start of the answer's body, at most 4 KiB, with secrets
	// and tokens scrubbed. It may be cut in the middle of a character.
	Body []byte

	// RetryAfter is how long the answer's Retry-After header asked the
	// client to wait before its next token request (identity providers
	// send one with 429 and 503): delay seconds, or an HTTP date less the
	// answer's Date header (less the time it was received when it has
	// none). It is 0 when the answer had no such header, one that is
	// neither form, or a date that had passed.
	RetryAfter time.Duration
}

// RetryAfterDelay returns e.RetryAfter, so that *OAuth2Error is a
// [RetryAfterError].
func (e *OAuth2Error) RetryAfterDelay() time.Duration { return e.RetryAfter }

// RetryAfterError is an error that says how long the identity provider
// asked for before the next token request, such as the Retry-After of a 429
// or 503 answer. *[OAuth2Error] is one, and so are the errors of the azuread
// adapter for an answer with a Retry-After; a credential of your own can
// return one too.
//
// The transport's token cache finds it anywhere in the chain of a failed
// fetch's error (errors.As) and starts no token request sooner than
// RetryAfterDelay after the failure (at most 5 minutes later), but never
// lets a token that is still in use run out first: it tries again when that
// token stops being usable. A delay of 0 or less asks for nothing.
type RetryAfterError interface {
	error
	RetryAfterDelay() time.Duration
}

// Error describes the answer. It does no I/O.
func (e *OAuth2Error) Error() string {
	var b strings.Builder
	b.WriteString("credential: token endpoint answered ")
	b.WriteString(statusLine(e.StatusCode))
	switch {
	case e.Code != "":
		b.WriteString(": ")
		b.WriteString(quoteIfOdd(e.Code))
	case e.StatusCode >= 200 && e.StatusCode < 300:
		b.WriteString(" with an error")
	default:
		b.WriteString(", not an OAuth2 error answer")
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Description))
	}
	if e.URI != "" {
		b.WriteString(" (see ")
		b.WriteString(quoteIfOdd(e.URI))
		b.WriteString(")")
	}
	return b.String()
}

func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

var plainRE = regexp.MustCompile(`^[\x21\x23-\x5b\x5d-\x7e]+$`)

// quoteIfOdd quotes s unless it is printable ASCII without spaces, quotes
// or backslashes, as RFC 6749 error codes and URIs are.
func quoteIfOdd(s string) string {
	if plainRE.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

// requestError is what OAuth2.GetToken returns: the cause, with the token
// URL and client ID the request was for, and the Retry-After of an
// *OAuth2Error cause, the one the token cache obeys.
// Its message is scrubbed of the client secret once more as a last line of
// defence, since causes such as network errors are not built here.
type requestError struct {
	tokenURL string // no user info, query or fragment
	clientID string
	err      error
	secrets  *scrubber
}

func (e *requestError) Error() string {
	cause := e.err.Error()
	var ue *url.Error
	if errors.As(e.err, &ue) && ue.Err != nil {
		// url.Error repeats the full URL, query included; it is named
		// once below without the query.
		cause = ue.Err.Error()
	}
	cause = strings.TrimPrefix(cause, "credential: ")
	msg := fmt.Sprintf("credential: OAuth2 token request to %s for client_id %q: %s", e.tokenURL, e.clientID, cause)
	if oe, ok := errors.AsType[*OAuth2Error](e.err); ok && oe.RetryAfter > 0 {
		// In the header's own unit, rounded up.
		secs := int64(oe.RetryAfter / time.Second)
		if oe.RetryAfter%time.Second != 0 {
			secs++
		}
		msg += "; Retry-After: " + strconv.FormatInt(secs, 10) + "s"
	}
	return e.secrets.scrub(msg)
}

func (e *requestError) Unwrap() error { return e.err }

// assertionError is the failure to get a client assertion: the error of
// the signer, or of OAuth2Config.ClientAssertion.
type assertionError struct{ err error }

func (e *assertionError) Error() string {
	return "client assertion: " + strings.TrimPrefix(e.err.Error(), "credential: ")
}

func (e *assertionError) Unwrap() error { return e.err }

// scrubber replaces the client secret, the forms in which a server could
// echo it, and issued tokens with REDACTED.
type scrubber struct {
	secret  string
	forms   []string // longest first
	longest int      // len(forms[0])
	r       *strings.Replacer
}

func newScrubber(clientID, secret string) *scrubber {
	qid, qsecret := url.QueryEscape(clientID), url.QueryEscape(secret)
	forms := append(secretForms(secret),
		base64.StdEncoding.EncodeToString([]byte(qid+":"+qsecret)),
		base64.StdEncoding.EncodeToString([]byte(clientID+":"+secret)),
	)
	return newScrubberForms(secret, forms)
}

// secretForms returns secret in the forms in which a server could echo it:
// as it is, form-, path- and JSON-escaped, and base64.
func secretForms(secret string) []string {
	qsecret := url.QueryEscape(secret)
	return []string{
		secret,
		qsecret,
		strings.ToLower(qsecret),
		url.PathEscape(secret),
		jsonEscape(secret, true),
		jsonEscape(secret, false),
		slashEscape(jsonEscape(secret, true)),
		slashEscape(jsonEscape(secret, false)),
		base64.StdEncoding.EncodeToString([]byte(secret)),
	}
}

// withSecret returns a scrubber that also scrubs v, a client assertion, in
// every form secretForms knows. Of a JWT it also scrubs the signature on
// its own: header and claims say nothing secret, but with the signature
// they make an assertion that a server may accept until it expires.
func (s *scrubber) withSecret(v string) *scrubber {
	add := secretForms(v)
	if i := strings.LastIndexByte(v, '.'); i >= 0 && len(v)-i-1 >= minIssuedLen {
		add = append(add, v[i+1:])
	}
	return newScrubberForms(s.secret, append(slices.Clone(s.forms), add...))
}

func newScrubberForms(secret string, forms []string) *scrubber {
	forms = slices.DeleteFunc(forms, func(s string) bool { return s == "" })
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	forms = slices.Compact(forms)
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, redacted)
	}
	longest := 0
	if len(forms) > 0 {
		longest = len(forms[0])
	}
	return &scrubber{secret: secret, forms: forms, longest: longest, r: strings.NewReplacer(pairs...)}
}

// minIssuedLen is the length from which an issued token is scrubbed by
// value: shorter values would garble ordinary words.
const minIssuedLen = 8

// with returns a scrubber that also scrubs the given issued tokens.
func (s *scrubber) with(issued ...string) *scrubber {
	var add []string
	for _, t := range issued {
		if len(t) >= minIssuedLen {
			add = append(add, t, jsonEscape(t, true), slashEscape(jsonEscape(t, true)), url.QueryEscape(t))
		}
	}
	if len(add) == 0 {
		return s
	}
	return newScrubberForms(s.secret, append(slices.Clone(s.forms), add...))
}

func (s *scrubber) scrub(str string) string {
	if s == nil {
		return str
	}
	return s.r.Replace(str)
}

// slashEscape writes / as \/, as PHP's json_encode and others do.
func slashEscape(s string) string { return strings.ReplaceAll(s, "/", `\/`) }

func jsonEscape(s string, escapeHTML bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return strings.TrimSuffix(strings.TrimPrefix(out, `"`), `"`)
}

// tokenFieldRE finds the values of token fields in JSON text, also when the
// JSON is cut short; tokenParamRE does the same in form-encoded text.
var (
	tokenFieldRE = regexp.MustCompile(`("(?:access_token|refresh_token|id_token)"\s*:\s*")(?:[^"\\]|\\.)*`)
	tokenParamRE = regexp.MustCompile(`((?:^|[&;?])(?:access_token|refresh_token|id_token)=)[^&;]*`)
)

// withTokensIn returns a scrubber that also scrubs every value of a token
// field written in text, JSON or form-encoded. The decoded answer does not
// name them all: a body that is cut or broken does not decode, and of a
// field given twice the decoder keeps one value; the server may echo any of
// them elsewhere in the answer. Values longer than maxKeptBody are left to
// scrubText: no kept text can hold one whole. It finds the field names with
// strings.Index, not a regular expression, since text can be a megabyte.
func (s *scrubber) withTokensIn(text string) *scrubber {
	var vals []string
	for _, name := range []string{"access_token", "refresh_token", "id_token"} {
		// A bound on the values, so that a body of a thousand token
		// fields does not build a replacer of thousands of strings.
		for off := 0; len(vals) < maxScrubbedTokens; {
			i := strings.Index(text[off:], name)
			if i < 0 {
				break
			}
			i += off
			off = i + len(name)
			rest := text[off:]
			switch {
			case i > 0 && text[i-1] == '"' && strings.HasPrefix(rest, `"`):
				// JSON: "name" : "value", the value perhaps cut short.
				rest, colon := strings.CutPrefix(strings.TrimLeft(rest[1:], " \t\r\n"), ":")
				rest, quote := strings.CutPrefix(strings.TrimLeft(rest, " \t\r\n"), `"`)
				raw, short := jsonStringStart(rest)
				if !colon || !quote || !short {
					continue
				}
				vals = append(vals, raw)
				var decoded string
				if json.Unmarshal([]byte(`"`+raw+`"`), &decoded) == nil && decoded != raw {
					vals = append(vals, decoded)
				}
			case (i == 0 || strings.IndexByte("&;?", text[i-1]) >= 0) && strings.HasPrefix(rest, "="):
				// Form: name=value up to the next separator.
				raw := rest[1:]
				if j := strings.IndexAny(raw, "&;"); j >= 0 {
					raw = raw[:j]
				}
				if len(raw) > maxKeptBody {
					continue
				}
				vals = append(vals, raw)
				if decoded, err := url.QueryUnescape(raw); err == nil && decoded != raw {
					vals = append(vals, decoded)
				}
			}
		}
	}
	return s.with(vals...)
}

// maxScrubbedTokens bounds the token values withTokensIn adds.
const maxScrubbedTokens = 64

// jsonStringStart returns the content of the JSON string that s starts
// with, up to its closing quote or, when the text was cut, to the end; ok is
// false when it is longer than maxKeptBody.
func jsonStringStart(s string) (raw string, ok bool) {
	for i := 0; i < len(s) && i <= maxKeptBody; i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[:i], true
		}
	}
	return s, len(s) <= maxKeptBody
}

// scrubText removes secrets and tokens from text taken from an answer.
func (s *scrubber) scrubText(text string) string {
	text = tokenFieldRE.ReplaceAllString(text, "${1}"+redacted)
	text = tokenParamRE.ReplaceAllString(text, "${1}"+redacted)
	return s.scrub(text)
}

// Limits of what an OAuth2Error keeps.
const (
	maxKeptBody    = 4 << 10
	maxKeptField   = 1 << 10
	maxSnippetRune = 200
)

// keepBody returns the scrubbed start of body for OAuth2Error.Body.
func (s *scrubber) keepBody(body []byte) []byte {
	if len(body) == 0 {
		return nil
	}
	// Only the start is kept, so only the start is scrubbed.
	body, cut := s.window(body, maxKeptBody+2*s.longest+64)
	text := s.scrubText(string(body))
	if cut {
		text = s.dropTail(text)
	}
	if len(text) > maxKeptBody {
		text = text[:maxKeptBody]
	}
	return []byte(text)
}

// window returns at most n bytes of body and whether it cut.
func (s *scrubber) window(body []byte, n int) ([]byte, bool) {
	if len(body) <= n {
		return body, false
	}
	return body[:n], true
}

// dropTail removes the end of a text made from a window that was cut. A
// secret that straddled the cut was not matched whole, so its first part
// is still there, at the end of the text since scrubbing and the snippet's
// steps keep the order; replacements and stripping before it may have moved
// it close to the start, within what a later cut keeps. The ToValidUTF8 of
// the snippet can triple a byte, hence three times the longest form.
func (s *scrubber) dropTail(text string) string {
	n := len(text) - 3*s.longest
	if n <= 0 {
		return ""
	}
	text = text[:n]
	// Do not leave the start of a cut character.
	for len(text) > 0 {
		if r, size := utf8.DecodeLastRuneInString(text); r != utf8.RuneError || size > 1 {
			break
		}
		text = text[:len(text)-1]
	}
	return text
}

// field returns a scrubbed field of an answer, cut to maxKeptField bytes
// at a character boundary.
func (s *scrubber) field(v string) string {
	v = s.scrubText(strings.ToValidUTF8(v, "\uFFFD"))
	if len(v) > maxKeptField {
		v = v[:maxKeptField]
		for len(v) > 0 && !utf8.ValidString(v) {
			v = v[:len(v)-1]
		}
	}
	return v
}

// snippet returns the start of a body as one line of text: tags stripped,
// entities decoded, white space collapsed, control characters dropped, at
// most maxSnippetRune characters. It is scrubbed before and after the
// stripping, which can join the pieces of a secret, and before the cut,
// which could leave part of one.
func (s *scrubber) snippet(body []byte) string {
	body, cut := s.window(body, 8<<10)
	text := strings.ToValidUTF8(string(body), "\uFFFD")
	text = s.scrubText(text)
	text = html.UnescapeString(stripTags(text))
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return -1
		}
		return r
	}, text)
	text = s.scrubText(strings.Join(strings.Fields(text), " "))
	if cut {
		text = strings.TrimSpace(s.dropTail(text))
	}
	if utf8.RuneCountInString(text) > maxSnippetRune {
		text = string([]rune(text)[:maxSnippetRune]) + "..."
	}
	return text
}

// stripTags removes everything between < and >, and the content of script
// and style elements, which is not text for a reader.
func stripTags(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteByte(' ')
		s = s[i:]
		end := strings.IndexByte(s, '>')
		if end < 0 {
			break
		}
		tag := strings.ToLower(s[1:end])
		s = s[end+1:]
		for _, el := range []string{"script", "style"} {
			if tag == el || strings.HasPrefix(tag, el+" ") {
				if j := strings.Index(strings.ToLower(s), "</"+el); j >= 0 {
					s = s[j:]
				} else {
					s = ""
				}
			}
		}
	}
	return b.String()
}

// authParamRE matches the auth-params of a WWW-Authenticate challenge.
var authParamRE = regexp.MustCompile(`([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)`)

// challengeError returns the error, error_description and error_uri
// parameters of the first WWW-Authenticate challenge that has an error
// parameter (RFC 6750 section 3 defines them; token endpoints reuse them).
func challengeError(h http.Header) (code, desc, uri string) {
	for _, v := range h.Values("Www-Authenticate") {
		params := map[string]string{}
		for _, m := range authParamRE.FindAllStringSubmatch(v, -1) {
			val := m[2]
			if strings.HasPrefix(val, `"`) {
				val = unquoteParam(val)
			}
			key := strings.ToLower(m[1])
			if _, seen := params[key]; !seen {
				params[key] = val
			}
		}
		if params["error"] != "" {
			return params["error"], params["error_description"], params["error_uri"]
		}
	}
	return "", "", ""
}

// unquoteParam undoes an HTTP quoted-string.
func unquoteParam(q string) string {
	q = strings.TrimSuffix(strings.TrimPrefix(q, `"`), `"`)
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '\\' && i+1 < len(q) {
			i++
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
