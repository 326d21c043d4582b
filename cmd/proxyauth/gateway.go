package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/proxyauth/proxyauth/internal/hosts"
	"github.com/proxyauth/proxyauth/transport"
)

// gateway is the handler of `serve`: the guards against being an open
// proxy, the local endpoints, and the reverse proxy to the upstream.
type gateway struct {
	upstream    *url.URL
	display     string // upstream for messages
	proxy       *httputil.ReverseProxy
	tr          *transport.Transport
	log         *slog.Logger
	port        string // the listener's port
	exact       string // the --listen address as a Host, when it is not loopback
	localKey    []byte // nil: none required
	maxReplay   int64
	bodyTimeout time.Duration
	metrics     *metrics
}

func newGateway(cfg serveConfig, tr *transport.Transport, addr net.Addr, bodyTimeout time.Duration) *gateway {
	_, port, _ := net.SplitHostPort(addr.String())
	g := &gateway{
		upstream:    cfg.upstream,
		display:     displayURL(cfg.upstream),
		tr:          tr,
		log:         cfg.logger,
		port:        port,
		maxReplay:   cfg.maxReplayBody,
		bodyTimeout: bodyTimeout,
		metrics:     &metrics{},
	}
	if host, _, _ := net.SplitHostPort(cfg.listen); !hosts.IsLoopback(host) {
		// With port 0 the client uses the port the listener got.
		g.exact = net.JoinHostPort(host, port)
	}
	if cfg.localKey != "" {
		g.localKey = []byte(cfg.localKey)
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:   g.rewrite,
		Transport: tr,
		// ReverseProxy flushes event streams and answers of unknown
		// length at every write on its own; -1 does it for answers of
		// known length too, so that nothing the upstream sent waits in a
		// buffer.
		FlushInterval:  -1,
		ErrorHandler:   g.proxyError,
		ModifyResponse: g.answered,
		ErrorLog:       slog.NewLogLogger(cfg.logger.With("event", "reverse_proxy").Handler(), slog.LevelDebug),
	}
	return g
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		g.log.Info("proxyauth: request", "event", "request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration", time.Since(start))
	}()

	switch {
	case r.Method == http.MethodConnect:
		g.refuse(sw, r, "connect", http.StatusMethodNotAllowed,
			"proxyauth serve is not a forward proxy: CONNECT is refused")
	case !strings.HasPrefix(r.RequestURI, "/") || r.URL.Scheme != "" || r.URL.Host != "":
		g.refuse(sw, r, "absolute_form", http.StatusBadRequest,
			"proxyauth serve is not a forward proxy: send requests for paths on it, not for absolute URLs")
	case !g.hostAllowed(r.Host):
		g.refuse(sw, r, "host", http.StatusMisdirectedRequest, fmt.Sprintf(
			"proxyauth serve refuses the Host %q: only loopback names with port %s are served (a guard against DNS rebinding)", r.Host, g.port))
	case crossSite(r):
		g.refuse(sw, r, "cross_site", http.StatusForbidden,
			"proxyauth serve refuses requests that a web page from another origin made through a browser")
	case r.URL.Path == "/healthz":
		sw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		sw.Header().Set("Cache-Control", "no-store")
		io.WriteString(sw, "ok\n")
	case !g.keyOK(r):
		sw.Header().Set("WWW-Authenticate", `Bearer realm="proxyauth"`)
		g.refuse(sw, r, "local_key", http.StatusUnauthorized,
			"proxyauth serve requires the local key (as a bearer token, api-key or x-api-key)")
	case r.URL.Path == "/metrics":
		g.serveMetrics(sw)
	default:
		g.forward(sw, r)
	}
}

// hostAllowed reports whether a request's Host is this listener's: a
// loopback name or address with the listener's port, or the exact --listen
// address. A page that a browser got from another site and that reaches
// the listener through DNS rebinding carries that site's name.
func (g *gateway) hostAllowed(host string) bool {
	if g.exact != "" && strings.EqualFold(host, g.exact) {
		return true
	}
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		name, port = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "80"
	}
	return port == g.port && hosts.IsLoopback(name)
}

// crossSite reports whether r comes from a browser on behalf of a page of
// another origin. Such a page can send a POST to a loopback address with
// the listener's Host (a form, or fetch in no-cors mode): it cannot read the
// answer, but the request would still go out with a token. Browsers mark
// these requests with Sec-Fetch-Site or Origin; other clients send neither.
// Unlike http.CrossOriginProtection, which lets safe methods through, every
// method is refused: no page has any business with the listener.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	origin := r.Header.Values("Origin")
	if len(origin) == 0 {
		return false
	}
	return len(origin) > 1 || !strings.EqualFold(origin[0], "http://"+r.Host)
}

// keyOK reports whether r presents the local key, when one is required, as
// a bearer token, an api-key or an x-api-key header: whichever the client's
// SDK sends its API key as.
func (g *gateway) keyOK(r *http.Request) bool {
	if g.localKey == nil {
		return true
	}
	auth := r.Header.Get("Authorization")
	if len(auth) > len("Bearer ") && strings.EqualFold(auth[:len("Bearer ")], "Bearer ") && g.isKey(auth[len("Bearer "):]) {
		return true
	}
	return g.isKey(r.Header.Get("Api-Key")) || g.isKey(r.Header.Get("X-Api-Key"))
}

func (g *gateway) isKey(s string) bool {
	return s != "" && subtle.ConstantTimeCompare([]byte(s), g.localKey) == 1
}

// forward sends r to the upstream.
func (g *gateway) forward(w http.ResponseWriter, r *http.Request) {
	g.metrics.inFlight.Add(1)
	defer g.metrics.inFlight.Add(-1)
	// An HTTP/1 server otherwise consumes and closes what is left of the
	// request body once the response starts (golang/go#40747): a body the
	// transport is still sending would be cut, and the connection to the
	// upstream with it, mid-stream.
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // not needed, and not supported, for HTTP/2

	out, err := g.replayable(rc, r)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errBodyTimeout) {
			status = http.StatusRequestTimeout
		}
		w.Header().Set("Connection", "close")
		writeError(w, status, "request_body", "proxyauth serve could not read the request body: "+err.Error())
		return
	}
	g.proxy.ServeHTTP(w, out)
}

// initialBodyBuffer is what a body to replay is given before its bytes
// arrive: a chat completion request fits.
const initialBodyBuffer = 64 << 10

var errBodyTimeout = errors.New("the body did not arrive in time")

// replayable returns r with its body read into memory and GetBody set, if
// it is at most maxReplay bytes long, so that the transport can resend it
// with a new token when the upstream answers 401. A longer body streams
// through once, after the part already read.
func (g *gateway) replayable(rc *http.ResponseController, r *http.Request) (*http.Request, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.ContentLength > g.maxReplay {
		return r, nil
	}
	// A slow client must not hold a buffer for ever. The deadline is
	// lifted once the part to replay is in: the rest of a longer body
	// streams for as long as it takes.
	_ = rc.SetReadDeadline(time.Now().Add(g.bodyTimeout))
	// The buffer grows with what arrives: a declared length costs nothing
	// until the bytes come, so a client cannot make the gateway hold
	// memory by announcing a body it never sends.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength+1, initialBodyBuffer)))
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, g.maxReplay+1))
	if err != nil {
		// The deadline stays: the server reads what is left of a body
		// before it closes it, and the client may send nothing more.
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return nil, errBodyTimeout
		}
		return nil, err
	}
	_ = rc.SetReadDeadline(time.Time{})
	out := new(http.Request)
	*out = *r
	if int64(buf.Len()) > g.maxReplay {
		out.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf.Bytes()), r.Body), r.Body}
		return out, nil
	}
	body := buf.Bytes()
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	return out, nil
}

// rewrite makes the outgoing request: the upstream's scheme, host and Host
// header, its path joined with the client's, the client's query as it is,
// and none of the client's credentials. The transport puts the token on.
func (g *gateway) rewrite(pr *httputil.ProxyRequest) {
	// ReverseProxy drops query parameters it cannot parse; the upstream
	// should see what the client sent.
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.SetURL(g.upstream)
	for k := range pr.Out.Header {
		switch strings.ToLower(k) {
		case "authorization", "api-key", "x-api-key":
			delete(pr.Out.Header, k)
		case "expect":
			if pr.In.GetBody != nil {
				// The body is read already; the client had its 100 Continue.
				delete(pr.Out.Header, k)
			}
		}
	}
}

func (g *gateway) answered(*http.Response) error {
	g.metrics.answered.Add(1)
	return nil
}

// proxyError answers a request that got no response from the upstream.
func (g *gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client hung up (or the drain timed out); no one is listening.
		g.metrics.clientGone.Add(1)
		g.log.Debug("proxyauth: the client went away", "event", "client_gone", "method", r.Method, "path", r.URL.Path)
		return
	}
	if fe, ok := errors.AsType[*transport.FetchError](err); ok {
		g.metrics.noToken.Add(1)
		g.log.Warn("proxyauth: no token", "event", "no_token", "error", err.Error())
		if wait := time.Until(fe.NextTry); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		}
		writeError(w, http.StatusServiceUnavailable, "no_token",
			"proxyauth serve has no token for "+g.display+": "+err.Error())
		return
	}
	g.metrics.upstreamErrors.Add(1)
	g.log.Warn("proxyauth: the upstream did not answer", "event", "upstream_error", "upstream", g.display, "error", err.Error())
	writeError(w, http.StatusBadGateway, "upstream_unreachable",
		"proxyauth serve got no answer from the upstream "+g.display+": "+err.Error())
}

// refuse answers a request that the listener's rules refuse.
func (g *gateway) refuse(w http.ResponseWriter, r *http.Request, reason string, status int, msg string) {
	g.metrics.refused(reason)
	g.log.Warn("proxyauth: request refused", "event", "refused", "reason", reason, "method", r.Method, "host", r.Host)
	writeError(w, status, "proxyauth_refused", msg)
}

// writeError writes an error in the form the OpenAI SDKs show to their
// users.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{
		"message": msg, "type": "proxyauth_error", "code": code,
	}})
}

// statusWriter notes the status of a response for the access log. It unwraps,
// so that http.ResponseController reaches the server's own writer to flush
// and to enable full duplex.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (r *statusWriter) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusWriter) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusWriter) Unwrap() http.ResponseWriter { return r.ResponseWriter }
