// Package transport provides an [http.RoundTripper] that puts
// "Authorization: Bearer <token>" on every outgoing request, with the token
// cached, refreshed in the background before it expires, fetched once for
// any number of concurrent requests, and renewed once when the server
// answers 401.
//
// # Errors
//
// Every error of [Transport.RoundTrip], [Transport.Token] and
// [Transport.AuthHeaders] that means "no token" wraps a *[FetchError]
// (errors.As), which says when the next token request may start and wraps
// the cause: errors.Is and errors.As reach the credential's own error (a
// *[credential.OAuth2Error], an azidentity error), or [ErrCredentialPanic],
// [ErrCredentialStuck], [ErrInvalidToken], a *[ExpiredTokenError], or
// [context.DeadlineExceeded] when the credential did not answer within
// [Options.FetchTimeout].
//
// A caller whose own context ended gets its context's error instead
// (errors.Is with [context.Canceled] or [context.DeadlineExceeded]), not a
// FetchError: nothing failed but its wait, and the shared fetch it waited
// for goes on for the other callers. Since a fetch that ran out of
// FetchTimeout wraps context.DeadlineExceeded too, match *FetchError first
// to tell the two apart.
//
// The messages of the errors RoundTrip, Token and AuthHeaders make start
// with "transport: " and never hold a token; an error of the base
// transport is returned as it is.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/hosts"
	"github.com/proxyauth/proxyauth/internal/redact"
	"github.com/proxyauth/proxyauth/internal/tokencache"
)

// Options configure a [Transport]. Pass nil to [New] or [Wrap] to accept the
// defaults; the zero value of each field selects its default, so fields can
// be added without breaking callers.
type Options struct {
	// Base sends the requests. If nil, http.DefaultTransport is used.
	// Wrap ignores it and uses the client's own Transport.
	Base http.RoundTripper

	// RefreshBefore is how long before a token expires the transport
	// starts fetching a new one in the background, while requests keep
	// using the current one. Zero means 5 minutes. It never exceeds half
	// a token's lifetime. A token's own RefreshOn takes precedence when it
	// lies between the fetch and the end of the token's usable life (30 s,
	// or a tenth of the lifetime, before expiry); one outside that range
	// would refresh on every request or only after callers had to wait,
	// so it is ignored. Either point then moves earlier by a random part
	// of up to a tenth of the token's lifetime (a RefreshOn by at most
	// half its distance from the fetch), so that processes started
	// together do not all refresh at the same moment: with the defaults, a
	// 1 h token is refreshed between 11 and 5 minutes before it expires.
	RefreshBefore time.Duration

	// FetchTimeout bounds one token fetch, whatever the credential does
	// with its context. Zero means 30 seconds. A credential that ignores
	// its context keeps running after the timeout; a token it still
	// returns is cached if it outlives the cached one. While two such
	// calls have not returned, no third is started and callers get an
	// error saying so.
	FetchTimeout time.Duration

	// Logger receives token events at debug and warn level. Every record
	// has an "event" attribute that names it: "token_fetched",
	// "refresh_started" and "retry" (debug); "fetch_failed",
	// "retry_skipped" and "refusal_hold" (warn). Tokens and secrets are
	// never logged. If nil, nothing is logged.
	Logger *slog.Logger

	// AllowHTTP lets tokens go over plain http to hosts that are not
	// loopback. Leave it false outside tests: anyone on the path can read
	// and replay a bearer token.
	AllowHTTP bool

	// DisableRetry turns off the single resend of a request that got 401.
	DisableRetry bool
}

// Stats counts what a [Transport] did since it was created.
type Stats struct {
	Fetches     int64 // calls of the credential
	FetchErrors int64 // of which failed
	Retries     int64 // requests resent after a 401
}

// maxDrain bounds how much of a 401 body is read before it is closed, so
// that the connection can be reused without reading a large body.
const maxDrain = 4 << 10

// Transport is an [http.RoundTripper] that authenticates requests with a
// bearer token from a [credential.TokenCredential].
//
// net/http asks RoundTrippers not to handle authentication; handling it is
// this one's purpose. For each request it:
//
//   - refuses plain http to a non-loopback host unless AllowHTTP is set,
//     sending nothing;
//   - takes the token from its cache, which fetches at most once at a time
//     and refreshes in the background before the token expires;
//   - sends a copy of the request with the Authorization header replaced
//     (an API key that an SDK put there does not leave the process);
//   - on a redirect, sets the token only when the new host is the original
//     one or a subdomain of it, the rule net/http uses for Authorization;
//   - on a 401, drops the token that was refused, so that the next request
//     gets a new one, and if the body can be replayed (none, http.NoBody
//     or GetBody) gets another token and resends once. If the server
//     refuses a new token too, 401s to that token are returned as they are
//     for a hold (1 s, doubling to 30 s while new tokens keep being
//     refused), so that a server that refuses every token does not turn
//     each request into a token request.
//
// The caller's request is never modified and its body is always closed.
// Response bodies stream through untouched. A Transport is safe for
// concurrent use; create one per credential and scope and share it.
type Transport struct {
	base         http.RoundTripper
	cache        *tokencache.Cache
	log          *slog.Logger
	now          func() time.Time
	allowHTTP    bool
	disableRetry bool
	retries      atomic.Int64
	refused      atomic.Pointer[refusal]
	// refusedSeq is the Seq of the newest token a 401 invalidated, and
	// acceptedSeq that of the newest token the server accepted (0: none).
	// A token newer than refusedSeq that is refused while no token newer
	// than refusedSeq was ever accepted was refused although new. Both
	// only grow: a 401 for an old token that arrives after a newer one
	// was accepted starts no episode, so the newer one, once revoked, is
	// dropped and replaced rather than held.
	refusedSeq  atomic.Uint64
	acceptedSeq atomic.Uint64
}

// refusal remembers a token that the server refused although it had just
// been fetched for a resend. A server that refuses new tokens too (a wrong
// audience, a missing role) is not helped by another fetch, and fetching on
// every 401 would hammer the identity provider.
type refusal struct {
	authorization string // the held token's header value
	until         time.Time
	hold          time.Duration
}

// 401s to a refused new token are returned as they are, without a fetch or
// a resend, for a hold that starts at firstHold and doubles, up to maxHold,
// each time a new token is refused again. A resend that is not refused ends
// it. A token revoked just after it was issued thus costs a second of 401s;
// a server that refuses every token costs a token request per 30 s.
const (
	firstHold = time.Second
	maxHold   = 30 * time.Second
)

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport that authenticates with tokens for scope from
// cred. Pass nil opts to accept the defaults.
func New(cred credential.TokenCredential, scope string, opts *Options) *Transport {
	return newTransport(cred, scope, opts, nil, nil)
}

// newTransport is New with the clock and the cache's random source (which
// jitters refresh points and backoff steps) injected; nil means time.Now
// and math/rand/v2's Float64.
func newTransport(cred credential.TokenCredential, scope string, opts *Options, now func() time.Time, rand func() float64) *Transport {
	var o Options
	if opts != nil {
		o = *opts
	}
	if now == nil {
		now = time.Now
	}
	t := &Transport{
		base:         o.Base,
		now:          now,
		log:          o.Logger,
		allowHTTP:    o.AllowHTTP,
		disableRetry: o.DisableRetry,
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	t.cache = tokencache.New(func(ctx context.Context) (credential.AccessToken, error) {
		return cred.GetToken(ctx, scope)
	}, tokencache.Options{
		RefreshBefore: o.RefreshBefore,
		FetchTimeout:  o.FetchTimeout,
		Now:           now,
		Rand:          rand,
		Logger:        o.Logger,
	})
	return t
}

// Wrap returns a copy of client whose Transport is a [Transport] over
// client.Transport (nil: http.DefaultTransport); opts.Base is ignored.
// client itself is not changed. A nil client is taken as &http.Client{}.
func Wrap(client *http.Client, cred credential.TokenCredential, scope string, opts *Options) *http.Client {
	var c http.Client
	if client != nil {
		c = *client
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Base = c.Transport
	c.Transport = New(cred, scope, &o)
	return &c
}

// Token returns the cached token, fetching it if there is none that can be
// used. ctx ends only this caller's wait, not the shared fetch. An error
// wraps a *[FetchError], or is ctx's own when ctx ended first.
func (t *Transport) Token(ctx context.Context) (credential.AccessToken, error) {
	e, err := t.cache.Get(ctx)
	if err != nil {
		return credential.AccessToken{}, wrapTokenErr(err)
	}
	return e.Token, nil
}

// AuthHeaders returns a fresh header map {"Authorization": {"Bearer ..."}}
// for clients that cannot take an http.Client, such as WebSocket dialers.
// Its errors are those of Token.
func (t *Transport) AuthHeaders(ctx context.Context) (http.Header, error) {
	e, err := t.cache.Get(ctx)
	if err != nil {
		return nil, wrapTokenErr(err)
	}
	return http.Header{"Authorization": {e.Authorization}}, nil
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	f, fe := t.cache.Stats()
	return Stats{Fetches: f, FetchErrors: fe, Retries: t.retries.Load()}
}

// String describes t by its counters and options. It reads no token and,
// unlike fmt's walk over the fields, races with nothing.
func (t *Transport) String() string {
	st := t.Stats()
	return fmt.Sprintf("transport.Transport{Base:%T AllowHTTP:%v DisableRetry:%v Fetches:%d FetchErrors:%d Retries:%d}",
		t.base, t.allowHTTP, t.disableRetry, st.Fetches, st.FetchErrors, st.Retries)
}

// Format prints String for every verb, so that %+v and %#v cannot walk into
// the cache and the base transport.
func (t *Transport) Format(f fmt.State, verb rune) { redact.Format(f, verb, t.String()) }

// wrapTokenErr wraps an error of the cache: a *FetchError, or the error of
// a caller whose own context ended.
func wrapTokenErr(err error) error { return fmt.Errorf("transport: no token: %w", err) }

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Until the body is handed to the base transport it is ours to close.
	bodyOwned := req.Body != nil
	defer func() {
		if bodyOwned {
			req.Body.Close()
		}
	}()

	if req.URL == nil {
		return nil, errors.New("transport: nil Request.URL")
	}
	if req.Response != nil && !redirectKeepsToken(req) {
		bodyOwned = false
		return t.base.RoundTrip(req)
	}
	if !t.allowHTTP && strings.EqualFold(req.URL.Scheme, "http") && !hosts.IsLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("%w: %s", ErrInsecureHTTP, req.URL.Host)
	}

	e, err := t.cache.Get(req.Context())
	if err != nil {
		return nil, fmt.Errorf("transport: no token for %s %s: %w", req.Method, req.URL.Host, err)
	}
	bodyOwned = false
	resp, err := t.send(req, e.AuthorizationValues, req.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.accepted(e)
		return resp, nil
	}
	if t.disableRetry {
		return resp, nil
	}
	return t.retry(req, resp, e)
}

// retry handles resp, a 401 to req, which carried the token of used. The
// refused token is dropped, so that the next request gets a new one even
// when this one cannot be resent; a request whose body can be replayed is
// resent once with a new token. resp is returned untouched whenever there
// is no resend.
//
// A server that refuses a token fetched after a refusal, before it accepted
// it (a wrong audience, a missing role), is not helped by another fetch:
// its 401s to that token are returned as they are for a hold, without
// invalidation or fetches.
func (t *Transport) retry(req *http.Request, resp *http.Response, used *tokencache.Entry) (*http.Response, error) {
	if r := t.refused.Load(); r != nil && r.authorization == used.Authorization {
		if t.now().Before(r.until) {
			return resp, nil
		}
		t.drop(used) // the hold is over: try another token
	} else if t.onRefused(used, req.URL.Host) {
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // a resend would send a partial or empty body
	}
	e, err := t.cache.Get(req.Context())
	if err != nil {
		if t.log != nil {
			t.log.Warn("transport: 401 not resent: no new token", "event", "retry_skipped", "host", req.URL.Host, "error", err.Error())
		}
		return resp, nil
	}
	if e.Authorization == used.Authorization {
		return resp, nil // the credential has no other token to offer
	}
	body := req.Body
	if body != nil && body != http.NoBody { // replayable, as checked above
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()

	t.retries.Add(1)
	if t.log != nil {
		t.log.Debug("transport: resending after 401 with a new token", "event", "retry", "method", req.Method, "host", req.URL.Host)
	}
	resp, err = t.send(req, e.AuthorizationValues, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.accepted(e)
		return resp, nil
	}
	t.onRefused(e, req.URL.Host)
	return resp, nil
}

// send hands req to the base with auth and body. A base that breaks the
// RoundTripper contract by returning a response with its error has that
// response's body closed, as net/http's client does, and only the error
// goes on.
func (t *Transport) send(req *http.Request, auth []string, body io.ReadCloser) (*http.Response, error) {
	resp, err := t.base.RoundTrip(withAuth(req, auth, body))
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	return resp, nil
}

// onRefused handles a 401 to e. A token fetched after a refusal and
// refused before any acceptance starts a hold, and onRefused reports true;
// any other refused token is dropped, so that the next request gets a new
// one, as after a revocation.
func (t *Transport) onRefused(e *tokencache.Entry, host string) (held bool) {
	if t.refusedNew(e) {
		t.refuse(e, host)
		return true
	}
	t.drop(e)
	return false
}

// drop invalidates e, which the server refused, so that the next request
// gets a new token, and marks it refused, so that a token fetched after it
// and refused before any acceptance starts a hold.
func (t *Transport) drop(e *tokencache.Entry) {
	t.markRefused(e)
	t.cache.Invalidate(e.Token.Token)
}

// refusedNew reports whether e, which the server just refused, was
// fetched after a refusal that no acceptance of a newer token has ended.
func (t *Transport) refusedNew(e *tokencache.Entry) bool {
	rs := t.refusedSeq.Load()
	return rs != 0 && e.Seq() > rs && t.acceptedSeq.Load() <= rs
}

// markRefused records that the server refused used: a token fetched after
// it is new until the server accepts a token newer than used.
func (t *Transport) markRefused(used *tokencache.Entry) { storeMax(&t.refusedSeq, used.Seq()) }

// accepted ends the refusal episode when the server took a request: the
// hold, with the held token or with another one after the hold, and the
// mark of a refused token once a newer one is accepted.
func (t *Transport) accepted(e *tokencache.Entry) {
	if r := t.refused.Load(); r != nil && (r.authorization == e.Authorization || !t.now().Before(r.until)) {
		t.refused.CompareAndSwap(r, nil)
	}
	storeMax(&t.acceptedSeq, e.Seq())
}

// storeMax raises v to n unless it holds more already. Concurrent calls
// leave the largest n, whatever their order.
func storeMax(v *atomic.Uint64, n uint64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// refuse starts a hold for e, a new token the server refused too. Many
// requests refused at once with the same new token start one hold, not a
// doubling each.
func (t *Transport) refuse(e *tokencache.Entry, host string) {
	now := t.now()
	for {
		prev := t.refused.Load()
		if prev != nil && prev.authorization == e.Authorization {
			return
		}
		hold := firstHold
		if prev != nil && now.Before(prev.until.Add(maxHold)) {
			hold = min(2*prev.hold, maxHold) // refused again soon after the last hold
		}
		if t.refused.CompareAndSwap(prev, &refusal{authorization: e.Authorization, until: now.Add(hold), hold: hold}) {
			if t.log != nil {
				t.log.Warn("transport: a newly fetched token was refused too; its 401s are returned without a new fetch for a while",
					"event", "refusal_hold", "host", host, "hold", hold)
			}
			return
		}
	}
}

// withAuth returns a shallow copy of req with its own header map holding
// auth, and body. The header values are shared with req: a RoundTripper
// must not modify them, and sharing saves an allocation per header.
//
// A key such as "authorization" that was put into the map directly, not
// canonicalised by Header.Set, is dropped too: net/http writes every key of
// the map, so it would go out beside the token.
func withAuth(req *http.Request, auth []string, body io.ReadCloser) *http.Request {
	r := new(http.Request)
	*r = *req
	h := make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		if len(k) == len("Authorization") && strings.EqualFold(k, "Authorization") {
			continue
		}
		h[k] = v
	}
	h["Authorization"] = auth
	r.Header = h
	r.Body = body
	return r
}

// redirectKeepsToken reports whether a redirect hop may carry the token:
// only while every hop of its chain stayed on the original request's host
// or its subdomains. Once a chain has left, a return to the original host
// gets no token either, as net/http treats Authorization since Go 1.23.5.
func redirectKeepsToken(req *http.Request) bool {
	orig := req
	for orig.Response != nil && orig.Response.Request != nil {
		orig = orig.Response.Request
	}
	host := orig.URL.Hostname()
	for r := req; r != orig; r = r.Response.Request {
		if !hosts.SameOrSubdomain(r.URL.Hostname(), host) {
			return false
		}
	}
	return true
}
