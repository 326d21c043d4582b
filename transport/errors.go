package transport

import (
	"errors"

	"github.com/proxyauth/proxyauth/internal/tokencache"
)

// ErrInsecureHTTP is returned, wrapped, when a token would go over plain http
// to a host that is not loopback and [Options.AllowHTTP] is false. Loopback
// hosts are 127.0.0.0/8, ::1 and "localhost". Use errors.Is to match it.
var ErrInsecureHTTP = errors.New("transport: refusing to send a bearer token over plain http to a non-loopback host")

// FetchError is a failed token fetch, or, while the backoff after one runs,
// the error of every caller that finds no usable token. Get it with
// errors.As:
//
//	var fe *transport.FetchError
//	if errors.As(err, &fe) {
//		// fe.Err is the cause, fe.Failures the failed fetches in a
//		// row, and no token request starts before fe.NextTry.
//	}
//
// Its fields:
//
//	Err      error     // the cause; errors.Is and errors.As reach it through the FetchError
//	Failures int       // consecutive failed fetches, 1 for the first
//	NextTry  time.Time // no token request starts before this
//
// NextTry follows the backoff: 200 ms after the first failure, doubling to
// 30 s, each step shortened by a random part of up to half, so that
// processes that failed together do not try again together. When the cause
// is a [credential.RetryAfterError] (a *[credential.OAuth2Error] from an
// answer with a Retry-After header), NextTry is at least that much later,
// up to 5 minutes. After a failed background refresh it is never later
// than the moment the token in use stops being usable.
type FetchError = tokencache.FetchError

// ExpiredTokenError is the cause of a failed fetch in which the credential
// returned a token that had already expired, typically because of clock
// skew or a stale cache of its own. ExpiresOn is the token's expiry, Now
// when the transport received it. Get it with errors.As.
type ExpiredTokenError = tokencache.ExpiredTokenError

// The causes of failed fetches that are not the credential's own errors,
// wrapped in a *[FetchError]. Use errors.Is to match them.
var (
	// ErrCredentialPanic: the credential panicked. The panic value is in
	// the message; the process goes on.
	ErrCredentialPanic = tokencache.ErrCredentialPanic

	// ErrCredentialStuck: two earlier calls of the credential outlived
	// [Options.FetchTimeout] and have not returned; no third is started
	// until one does.
	ErrCredentialStuck = tokencache.ErrCredentialStuck

	// ErrInvalidToken: the credential returned an empty token, or one with
	// characters that cannot go into an Authorization header (anything but
	// visible ASCII). The message says which; the token is never in it.
	ErrInvalidToken = tokencache.ErrInvalidToken
)
