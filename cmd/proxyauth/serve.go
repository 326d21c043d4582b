package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/proxyauth/proxyauth/internal/hosts"
	"github.com/proxyauth/proxyauth/transport"
)

const serveHelp = `Usage: proxyauth serve --upstream URL [--listen 127.0.0.1:4000] [--local-key-env NAME] [flags]

Runs a local gateway that forwards every request to the upstream, its path
joined to the upstream's, with a bearer token of the configured credential
in place of the client's Authorization, api-key and x-api-key headers.
Point a client that takes only an API key at it, with any key:

  OpenAI(base_url="http://127.0.0.1:4000/v1", api_key="unused")

It listens on loopback unless told otherwise and is never an open proxy:
absolute-form and CONNECT requests are refused, and so is a Host header that
is neither a loopback name or address with the listener's port nor the
exact --listen address. /healthz answers without calling the upstream;
/metrics has counters in the Prometheus text format. SIGINT or SIGTERM
stops accepting and drains the requests in flight.
`

// timeouts protect the server from slow clients without cutting a long
// streamed answer: none of them bounds writing a response.
type timeouts struct {
	readHeader time.Duration // a client sends its request headers within this
	body       time.Duration // and a body that is read for replay within this
	idle       time.Duration // a kept-alive connection without a request is closed after this
}

var defaultTimeouts = timeouts{
	readHeader: 10 * time.Second,
	body:       5 * time.Minute,
	idle:       2 * time.Minute,
}

// serveConfig is what `serve` was told.
type serveConfig struct {
	upstream        *url.URL
	listen          string
	localKeyEnv     string
	localKey        string
	maxReplayBody   int64
	shutdownTimeout time.Duration
	allowHTTP       bool
	logger          *slog.Logger
}

func (c *command) serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var s settings
	s.register(fs)
	upstream := fs.String("upstream", "", "the URL every request goes to, its path joined to this one's (required)")
	listen := fs.String("listen", "127.0.0.1:4000", "the address to listen on; one that is not loopback needs --local-key-env")
	localKeyEnv := fs.String("local-key-env", "", "the name of an environment variable whose value every client must present, as a bearer token, api-key or x-api-key")
	maxReplay := byteSize(16 << 20)
	fs.Var(&maxReplay, "max-replay-body", "request bodies up to this size are read before sending, so that a request refused with 401 is resent with a new token; larger ones stream through once (bytes, or with KiB, MiB, GiB)")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGINT or SIGTERM, how long requests in flight may take to finish")
	allowHTTP := fs.Bool("allow-http", false, "allow a plain-http upstream that is not on loopback: anyone on the path can read and replay the tokens")
	logFormat := fs.String("log-format", "text", "log format on standard error: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := c.parse(fs, args, serveHelp); err != nil {
		return err
	}
	s.resolve(fs, c.getenv)

	cfg := serveConfig{
		listen:          *listen,
		localKeyEnv:     *localKeyEnv,
		maxReplayBody:   int64(maxReplay),
		shutdownTimeout: *shutdownTimeout,
		allowHTTP:       *allowHTTP,
	}
	var err error
	if cfg.upstream, err = checkUpstream(*upstream, *allowHTTP); err != nil {
		return err
	}
	if err := cfg.checkListen(c.getenv); err != nil {
		return err
	}
	if cfg.shutdownTimeout < 0 {
		return usagef("--shutdown-timeout is %v: want 0 or more", cfg.shutdownTimeout)
	}
	if cfg.logger, err = newLogger(c, *logFormat, *logLevel); err != nil {
		return err
	}
	cred, closeIdle, err := c.newCredential(&s)
	if err != nil {
		return err
	}
	defer closeIdle()

	base := newHTTPTransport()
	defer base.CloseIdleConnections()
	tr := transport.New(cred, s.scope, &transport.Options{
		Base:      base,
		Logger:    cfg.logger,
		AllowHTTP: cfg.allowHTTP,
	})
	to := defaultTimeouts
	if c.timeouts != nil {
		to = *c.timeouts
	}
	return c.listenAndServe(cfg, tr, to)
}

// checkUpstream parses --upstream: an absolute http or https URL without
// user info or fragment. Plain http to a host that is not loopback needs
// allowHTTP.
func checkUpstream(raw string, allowHTTP bool) (*url.URL, error) {
	if raw == "" {
		return nil, usagef("--upstream is required: the URL of the gateway, e.g. https://llm.example.com")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not the *url.Error itself: it repeats the URL, user info and
		// query included.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, usagef("--upstream does not parse: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, usagef("--upstream %q is not an absolute http or https URL", displayURL(u))
	}
	if u.User != nil {
		return nil, usagef("--upstream must not contain user info: the token is the credential")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return nil, usagef("--upstream must not have a fragment")
	}
	if u.Scheme == "http" && !hosts.IsLoopback(u.Hostname()) && !allowHTTP {
		return nil, usagef("--upstream %s is plain http to a host that is not loopback: anyone on the path could read the tokens; use https, or --allow-http", displayURL(u))
	}
	return u, nil
}

// displayURL is u for messages and logs: without user info or a query,
// which may hold a password or a key of its own.
func displayURL(u *url.URL) string {
	v := *u
	v.User = nil
	v.RawQuery, v.ForceQuery = "", false
	return v.String()
}

// checkListen checks --listen and --local-key-env, and reads the local key.
func (cfg *serveConfig) checkListen(getenv func(string) string) error {
	host, port, err := net.SplitHostPort(cfg.listen)
	if err != nil {
		return usagef("--listen %q is not host:port: %v", cfg.listen, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usagef("--listen %q: the port is not a number from 0 to 65535", cfg.listen)
	}
	if cfg.localKeyEnv != "" {
		cfg.localKey = getenv(cfg.localKeyEnv)
		if cfg.localKey == "" {
			return usagef("--local-key-env names %s, which is unset or empty: set it to the key clients must present", cfg.localKeyEnv)
		}
	}
	if !hosts.IsLoopback(host) && cfg.localKey == "" {
		return usagef("--listen %s is not a loopback address: anyone who can reach it could use the tokens; --local-key-env is required", cfg.listen)
	}
	return nil
}

func newLogger(c *command, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(c.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// listenAndServe serves until a signal, then drains: it stops accepting,
// lets the requests in flight finish for up to the shutdown timeout, cuts
// what is left, and returns nil. A second signal cuts at once.
func (c *command) listenAndServe(cfg serveConfig, tr *transport.Transport, to timeouts) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	g := newGateway(cfg, tr, ln.Addr(), to.body)
	srv := newServer(g, cfg.logger, to)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	cfg.logger.Info("proxyauth: listening", "event", "listening", "addr", ln.Addr().String(), "upstream", displayURL(cfg.upstream))
	if c.ready != nil {
		c.ready(ln.Addr())
	}

	select {
	case err := <-served:
		return err
	case sig := <-c.signals:
		cfg.logger.Info("proxyauth: draining", "event", "draining", "signal", sig.String(), "timeout", cfg.shutdownTimeout, "in_flight", g.metrics.inFlight.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.signals:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		cfg.logger.Warn("proxyauth: requests still in flight were cut", "event", "drain_cut", "in_flight", g.metrics.inFlight.Load())
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	cfg.logger.Info("proxyauth: stopped", "event", "stopped")
	return nil
}

// newServer is the HTTP server of `serve`. Its own messages (a panic in a
// handler, accept errors) are log records like the rest, at debug level
// and with an event, so that a JSON log stays one kind of line.
func newServer(h http.Handler, logger *slog.Logger, to timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: to.readHeader,
		IdleTimeout:       to.idle,
		// "OPTIONS *" goes to the handler, which refuses it with the rest
		// of what is not a path on this server.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(logger.With("event", "http_server").Handler(), slog.LevelDebug),
	}
}

// byteSize is a size flag: bytes, or a number with KiB, MiB or GiB.
type byteSize int64

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		name string
		size int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.name); ok {
			num, mult = strings.TrimSpace(n), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size: want bytes, or a number with KiB, MiB or GiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}
