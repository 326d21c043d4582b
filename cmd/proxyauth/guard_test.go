package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestServeRefusesOpenProxyAndRebinding checks that the gateway is never a
// forward proxy (CONNECT and absolute-form requests are refused, whatever
// their Host) and that it answers only Host headers that name it: a
// loopback name or address with its port. A browser page that reached it
// through DNS rebinding carries its own site's name. Nothing refused
// reaches the upstream or fetches a token.
func TestServeRefusesOpenProxyAndRebinding(t *testing.T) {
	idp := newIdP(t)
	rec := newRecorder(t)
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", rec.URL)
	other := "1"
	if s.port == other {
		other = "2"
	}
	refused := []struct {
		name, request string
		status        int
	}{
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", http.StatusMethodNotAllowed},
		{"CONNECT with our Host", "CONNECT 127.0.0.1:" + s.port + " HTTP/1.1\r\nHost: 127.0.0.1:" + s.port + "\r\n\r\n", http.StatusMethodNotAllowed},
		{"absolute-form", "GET http://example.com/v1/models HTTP/1.1\r\nHost: example.com\r\n\r\n", http.StatusBadRequest},
		{"absolute-form to itself", "GET http://127.0.0.1:" + s.port + "/v1/models HTTP/1.1\r\nHost: 127.0.0.1:" + s.port + "\r\n\r\n", http.StatusBadRequest},
		{"absolute-form https", "GET https://example.com/ HTTP/1.1\r\nHost: 127.0.0.1:" + s.port + "\r\n\r\n", http.StatusBadRequest},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:" + s.port + "\r\n\r\n", http.StatusBadRequest},
		{"rebound name", "GET /v1/models HTTP/1.1\r\nHost: attacker.example:" + s.port + "\r\n\r\n", http.StatusMisdirectedRequest},
		{"rebound name, no port", "GET /v1/models HTTP/1.1\r\nHost: attacker.example\r\n\r\n", http.StatusMisdirectedRequest},
		{"name resolving to loopback", "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1.nip.io:" + s.port + "\r\n\r\n", http.StatusMisdirectedRequest},
		{"localhost subdomain", "GET /v1/models HTTP/1.1\r\nHost: evil.localhost:" + s.port + "\r\n\r\n", http.StatusMisdirectedRequest},
		{"loopback, other port", "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:" + other + "\r\n\r\n", http.StatusMisdirectedRequest},
		{"loopback, no port", "GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n", http.StatusMisdirectedRequest},
		{"all interfaces", "GET /v1/models HTTP/1.1\r\nHost: 0.0.0.0:" + s.port + "\r\n\r\n", http.StatusMisdirectedRequest},
		{"no Host", "GET /v1/models HTTP/1.0\r\n\r\n", http.StatusMisdirectedRequest},
		{"healthz, rebound", "GET /healthz HTTP/1.1\r\nHost: attacker.example:" + s.port + "\r\n\r\n", http.StatusMisdirectedRequest},
		{"metrics, rebound", "GET /metrics HTTP/1.1\r\nHost: attacker.example:" + s.port + "\r\n\r\n", http.StatusMisdirectedRequest},
	}
	for _, tt := range refused {
		resp, body := s.raw(t, tt.request)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d; want %d", tt.name, resp.StatusCode, tt.status)
		}
		if code, msg := apiError(t, body); code != "proxyauth_refused" || !strings.Contains(msg, "proxyauth serve") {
			t.Errorf("%s: error %q %q; want proxyauth_refused and a message", tt.name, code, msg)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("the upstream got %d refused requests; want none", n)
	}
	if n := idp.Requests(); n != 0 {
		t.Errorf("refused requests caused %d token requests; want none", n)
	}

	allowed := []string{"127.0.0.1", "localhost", "LocalHost", "127.9.8.7", "[::1]"}
	for _, host := range allowed {
		resp, _ := s.raw(t, "GET /v1/models HTTP/1.1\r\nHost: "+host+":"+s.port+"\r\n\r\n")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s:%s: status %d; want 200", host, s.port, resp.StatusCode)
		}
	}
	if n := len(rec.requests()); n != len(allowed) {
		t.Errorf("the upstream got %d requests; want the %d allowed", n, len(allowed))
	}

	m := scrape(t, s, nil)
	for reason, want := range map[string]int64{"connect": 2, "absolute_form": 4, "host": 10} {
		if got := m[`proxyauth_refused_requests_total{reason="`+reason+`"}`]; got != want {
			t.Errorf("refused %s: metrics say %d; want %d", reason, got, want)
		}
	}
}

// TestServeRefusesBrowserPages checks that a request a browser sends for a
// page of another origin is refused, whatever its method, even with the
// listener's own Host: the page cannot read the answer, but the request
// would go out with a token. Clients that are not browsers send neither
// header, and a browser's own navigation to the listener is its origin.
func TestServeRefusesBrowserPages(t *testing.T) {
	idp := newIdP(t)
	rec := newRecorder(t)
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", rec.URL)
	host := "127.0.0.1:" + s.port
	post := func(headers string) string {
		return "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n" + headers + "\r\n{}"
	}
	refused := map[string]string{
		"a form from another site":     post("Origin: https://attacker.example\r\nSec-Fetch-Site: cross-site\r\n"),
		"Origin only":                  post("Origin: https://attacker.example\r\n"),
		"Sec-Fetch-Site only":          post("Sec-Fetch-Site: cross-site\r\n"),
		"another port of localhost":    post("Origin: http://127.0.0.1:1\r\nSec-Fetch-Site: same-site\r\n"),
		"same-site, with our Origin":   post("Origin: http://" + host + "\r\nSec-Fetch-Site: same-site\r\n"),
		"an opaque origin":             post("Origin: null\r\n"),
		"https with our Host":          post("Origin: https://" + host + "\r\n"),
		"two origins":                  post("Origin: http://" + host + "\r\nOrigin: https://attacker.example\r\n"),
		"GET from another site":        "GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\nSec-Fetch-Site: cross-site\r\n\r\n",
		"metrics read by another site": "GET /metrics HTTP/1.1\r\nHost: " + host + "\r\nOrigin: https://attacker.example\r\n\r\n",
	}
	for name, request := range refused {
		resp, body := s.raw(t, request)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d; want 403", name, resp.StatusCode)
		}
		if code, msg := apiError(t, body); code != "proxyauth_refused" || !strings.Contains(msg, "another origin") {
			t.Errorf("%s: error %q %q; want proxyauth_refused, saying why", name, code, msg)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("the upstream got %d refused requests; want none", n)
	}
	if n := idp.Requests(); n != 0 {
		t.Errorf("refused requests caused %d token requests; want none", n)
	}

	allowed := map[string]string{
		"no browser":           post(""),
		"its own origin":       post("Origin: http://" + host + "\r\nSec-Fetch-Site: same-origin\r\n"),
		"its own origin, case": post("Origin: HTTP://" + host + "\r\n"),
		"typed in the bar":     "GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\nSec-Fetch-Site: none\r\n\r\n",
	}
	for name, request := range allowed {
		if resp, _ := s.raw(t, request); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d; want 200", name, resp.StatusCode)
		}
	}
	if n := len(rec.requests()); n != len(allowed) {
		t.Errorf("the upstream got %d requests; want the %d allowed", n, len(allowed))
	}
	if got := scrape(t, s, nil)[`proxyauth_refused_requests_total{reason="cross_site"}`]; got != int64(len(refused)) {
		t.Errorf("refused cross_site: metrics say %d; want %d", got, len(refused))
	}
}

// TestServeExactListenAddress checks that with a listen address that is not
// loopback, its exact host and port are accepted as Host, besides loopback
// names, and a local key is required.
func TestServeExactListenAddress(t *testing.T) {
	idp := newIdP(t)
	rec := newRecorder(t)
	env := sandboxEnv(idp)
	env["LOCAL_KEY"] = "local-key-value"
	s := startServe(t, &command{}, env, "--upstream", rec.URL, "--listen", "0.0.0.0:0", "--local-key-env", "LOCAL_KEY")
	for host, want := range map[string]int{
		"0.0.0.0:" + s.port:          http.StatusOK,
		"127.0.0.1:" + s.port:        http.StatusOK,
		"0.0.0.0:1" + s.port:         http.StatusMisdirectedRequest,
		"attacker.example:" + s.port: http.StatusMisdirectedRequest,
	} {
		resp, _ := s.raw(t, "GET /v1/models HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer local-key-value\r\n\r\n")
		if resp.StatusCode != want {
			t.Errorf("Host %s: status %d; want %d", host, resp.StatusCode, want)
		}
	}
}

// TestServeLocalKey checks --local-key-env: without the key, or with
// another, a request gets 401 and goes nowhere; with it, as a bearer token,
// an api-key or an x-api-key, it goes through without the key. /healthz
// needs no key; /metrics does.
func TestServeLocalKey(t *testing.T) {
	idp := newIdP(t)
	rec := newRecorder(t)
	const key = "sk-local-0123456789"
	env := sandboxEnv(idp)
	env["MY_LOCAL_KEY"] = key
	s := startServe(t, &command{}, env, "--upstream", rec.URL, "--local-key-env", "MY_LOCAL_KEY")

	for _, h := range []http.Header{
		nil,
		{"Authorization": {"Bearer sk-local-wrong"}},
		{"Authorization": {key}},
		{"Authorization": {"Basic " + key}},
		{"Api-Key": {key + "x"}},
		{"X-Api-Key": {key[:len(key)-1]}},
		{"Authorization": {"Bearer"}},
	} {
		resp, body := s.do(t, http.MethodGet, "/v1/models", h, "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("headers %v: status %d; want 401 with WWW-Authenticate", h, resp.StatusCode)
		}
		if strings.Contains(body, key) {
			t.Errorf("the 401 body holds the key: %s", body)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("the upstream got %d requests without the key; want none", n)
	}
	for _, h := range []http.Header{
		{"Authorization": {"Bearer " + key}},
		{"Authorization": {"bearer " + key}},
		{"Api-Key": {key}},
		{"X-Api-Key": {key}},
	} {
		if resp, body := s.do(t, http.MethodPost, "/v1/embeddings", h, `{}`); resp.StatusCode != http.StatusOK {
			t.Errorf("headers %v: %d %s; want 200", h, resp.StatusCode, body)
		}
	}
	for i, r := range rec.requests() {
		for k, vs := range r.header {
			if strings.Contains(strings.Join(vs, " "), key) {
				t.Errorf("request %d reached the upstream with the local key in %s", i, k)
			}
		}
	}
	if resp, body := s.do(t, http.MethodGet, "/healthz", nil, ""); resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz without the key: %d %q; want 200 ok", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, http.MethodGet, "/metrics", nil, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the key: %d; want 401", resp.StatusCode)
	}
	m := scrape(t, s, http.Header{"Authorization": {"Bearer " + key}})
	if got := m[`proxyauth_refused_requests_total{reason="local_key"}`]; got != 8 {
		t.Errorf("local-key refusals: metrics say %d; want 8", got)
	}
}

// TestServeHealthz checks that /healthz answers without a token or the
// upstream: the token endpoint and the upstream are down.
func TestServeHealthz(t *testing.T) {
	idp := newIdP(t)
	idp.SetDown(http.StatusServiceUnavailable)
	rec := newRecorder(t)
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", rec.URL)
	rec.Close()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, body := s.do(t, method, "/healthz", nil, "")
		if resp.StatusCode != http.StatusOK || (method == http.MethodGet && body != "ok\n") {
			t.Errorf("%s /healthz: %d %q; want 200 ok", method, resp.StatusCode, body)
		}
	}
	if n := idp.Requests(); n != 0 {
		t.Errorf("/healthz caused %d token requests; want none", n)
	}
}

// sampleLine is a sample line of the Prometheus text format, written out
// from its specification rather than taken from the code under test.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})?) (-?[0-9]+)$`)

// scrape gets /metrics and returns every sample by its name and labels,
// checking the shape of each line and that each family has HELP and TYPE.
func scrape(t *testing.T, s *server, h http.Header) map[string]int64 {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/metrics", h, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.HasSuffix(body, "\n") {
		t.Errorf("/metrics does not end with a newline")
	}
	samples := map[string]int64{}
	typed := map[string]string{}
	for line := range strings.Lines(body) {
		line = strings.TrimSuffix(line, "\n")
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && (f[1] == "HELP" || f[1] == "TYPE") {
			if f[1] == "TYPE" {
				typed[f[2]] = f[3]
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("/metrics line %q is not a sample", line)
			continue
		}
		name, _, _ := strings.Cut(m[1], "{")
		if typed[name] == "" || (typed[name] == "counter") != strings.HasSuffix(name, "_total") {
			t.Errorf("/metrics: sample %s has TYPE %q", name, typed[name])
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		samples[m[1]] = n
	}
	return samples
}

// TestServeMetrics checks the counters against what the test did.
func TestServeMetrics(t *testing.T) {
	idp := newIdP(t)
	rec := newRecorder(t)
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", rec.URL)
	for i := range 3 {
		s.do(t, http.MethodPost, "/v1/embeddings", nil, fmt.Sprint(i))
	}
	m := scrape(t, s, nil)
	want := map[string]int64{
		"proxyauth_token_fetches_total":                            1,
		"proxyauth_token_fetch_errors_total":                       0,
		"proxyauth_retries_total":                                  0,
		`proxyauth_requests_total{outcome="answered"}`:             3,
		`proxyauth_requests_total{outcome="no_token"}`:             0,
		`proxyauth_requests_total{outcome="upstream_error"}`:       0,
		`proxyauth_requests_total{outcome="client_gone"}`:          0,
		`proxyauth_refused_requests_total{reason="connect"}`:       0,
		`proxyauth_refused_requests_total{reason="absolute_form"}`: 0,
		`proxyauth_refused_requests_total{reason="host"}`:          0,
		`proxyauth_refused_requests_total{reason="cross_site"}`:    0,
		`proxyauth_refused_requests_total{reason="local_key"}`:     0,
		"proxyauth_in_flight_requests":                             0,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %d (present %v); want %d", k, got, ok, v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("/metrics has %d samples; want %d: %v", len(m), len(want), m)
	}
	if n := len(rec.requests()); n != 3 {
		t.Errorf("/metrics reached the upstream: it got %d requests; want 3", n)
	}
}
