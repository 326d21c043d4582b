package credential

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/proxyauth/proxyauth/internal/redact"
)

// AccessToken is a bearer token and when it stops being valid.
//
// Token is reachable only by field access. Every fmt verb (AccessToken
// implements [fmt.Formatter]), [log/slog] (LogValue) and [encoding/json]
// (MarshalJSON) show a redacted form with the expiry, so that logging or
// printing a token by mistake leaks nothing. fmt cannot call methods on
// unexported struct fields, so a struct that keeps an AccessToken in one
// prints it raw: keep tokens in exported fields or behind a Format method.
//
// ExpiresOn and RefreshOn are wall-clock times; the transport strips any
// monotonic clock reading from them, since the monotonic clock stops while
// a machine sleeps and a token's expiry does not.
type AccessToken struct {
	Token     string
	ExpiresOn time.Time // zero: never expires
	RefreshOn time.Time // zero: the cache decides when to refresh
}

// redacted stands where a token or a secret would be printed.
const redacted = redact.Redacted

// String returns a redacted description of t.
func (t AccessToken) String() string {
	var b strings.Builder
	b.WriteString("AccessToken{Token:")
	if t.Token == "" {
		b.WriteString(`""`)
	} else {
		b.WriteString(redacted)
	}
	b.WriteString(" ExpiresOn:")
	writeTime(&b, t.ExpiresOn)
	if !t.RefreshOn.IsZero() {
		b.WriteString(" RefreshOn:")
		writeTime(&b, t.RefreshOn)
	}
	b.WriteByte('}')
	return b.String()
}

func writeTime(b *strings.Builder, t time.Time) {
	if t.IsZero() {
		b.WriteString("never")
		return
	}
	b.WriteString(t.UTC().Format(time.RFC3339))
}

// GoString returns the same redacted description as String, for %#v.
func (t AccessToken) GoString() string { return "credential." + t.String() }

// Format implements [fmt.Formatter] so that no verb, flag or width can print
// the token: %v, %+v, %s, %q, %x and the rest all show the redacted form.
func (t AccessToken) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		redact.Format(f, verb, t.GoString())
		return
	}
	redact.Format(f, verb, t.String())
}

// LogValue implements [slog.LogValuer]: the token is replaced by REDACTED.
func (t AccessToken) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("token", redactedOrEmpty(t.Token))}
	if !t.ExpiresOn.IsZero() {
		attrs = append(attrs, slog.Time("expires_on", t.ExpiresOn))
	}
	if !t.RefreshOn.IsZero() {
		attrs = append(attrs, slog.Time("refresh_on", t.RefreshOn))
	}
	return slog.GroupValue(attrs...)
}

func redactedOrEmpty(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// MarshalJSON implements [json.Marshaler] with the token redacted. An
// AccessToken therefore does not survive a JSON round trip: tokens are not
// meant to be persisted through this type.
func (t AccessToken) MarshalJSON() ([]byte, error) {
	v := struct {
		Token     string     `json:"token"`
		ExpiresOn *time.Time `json:"expires_on,omitempty"`
		RefreshOn *time.Time `json:"refresh_on,omitempty"`
	}{Token: redactedOrEmpty(t.Token)}
	if !t.ExpiresOn.IsZero() {
		v.ExpiresOn = &t.ExpiresOn
	}
	if !t.RefreshOn.IsZero() {
		v.RefreshOn = &t.RefreshOn
	}
	return json.Marshal(v)
}

// TokenCredential fetches tokens for a scope.
//
// GetToken must be safe for concurrent use and must honour ctx: return soon
// after ctx is done. A Transport calls it from one goroutine at a time, with
// a context that carries its FetchTimeout; only a call that ignores its
// context and outlives that timeout may still run beside the next one, and
// no third call starts while two such calls have not returned. Other users
// of a credential may call it concurrently.
type TokenCredential interface {
	GetToken(ctx context.Context, scope string) (AccessToken, error)
}

// Func adapts an ordinary function to a [TokenCredential].
type Func func(ctx context.Context, scope string) (AccessToken, error)

// GetToken calls f(ctx, scope).
func (f Func) GetToken(ctx context.Context, scope string) (AccessToken, error) {
	return f(ctx, scope)
}

// Static returns a credential that always returns token, which never
// expires. It suits API keys used as bearer tokens and tests. The token is
// held in a closure so that printing the credential cannot show it.
func Static(token string) TokenCredential {
	return Func(func(ctx context.Context, _ string) (AccessToken, error) {
		if err := ctx.Err(); err != nil {
			return AccessToken{}, err
		}
		return AccessToken{Token: token}, nil
	})
}

// FromTokenSource adapts any [oauth2.TokenSource] (Google service accounts,
// GitHub apps, the JWT bearer grant, ...) to a [TokenCredential].
//
// The source's own scopes apply; scope is ignored. A TokenSource takes no
// context, so ctx is checked before the call only; the transport still bounds
// the wait with its FetchTimeout. Errors of the source are returned unchanged.
// A token whose type is not Bearer is refused, since it cannot be sent as a
// bearer token.
func FromTokenSource(ts oauth2.TokenSource) TokenCredential {
	return Func(func(ctx context.Context, _ string) (AccessToken, error) {
		if err := ctx.Err(); err != nil {
			return AccessToken{}, err
		}
		tok, err := ts.Token()
		if err != nil {
			return AccessToken{}, tokenSourceError(err)
		}
		if tok == nil || tok.AccessToken == "" {
			return AccessToken{}, errors.New("credential: token source returned no access token")
		}
		if typ := tok.Type(); !strings.EqualFold(typ, "Bearer") {
			return AccessToken{}, fmt.Errorf("credential: token source returned a token of type %q, not Bearer", typ)
		}
		return AccessToken{Token: tok.AccessToken, ExpiresOn: tok.Expiry}, nil
	})
}

// tokenSourceError keeps the response body of an [oauth2.RetrieveError] out of
// the message: RetrieveError.Error() includes the whole body when the server
// sent no error code, and a body can echo the client secret. The original
// error stays reachable with errors.As.
func tokenSourceError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	msg := fmt.Sprintf("credential: token source: token endpoint answered %d", status)
	if re.ErrorCode != "" {
		msg += fmt.Sprintf(" %q", re.ErrorCode)
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError shows msg and unwraps to err, whose own message is not shown.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
