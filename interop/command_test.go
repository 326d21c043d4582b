package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// The command's end-to-end tests: `proxyauth serve` and `proxyauth token`,
// built from this repository, between clients that no one here wrote (the
// official OpenAI Node SDK, OpenAI and AzureOpenAI, and curl) and
// internal/sandbox's gateway, which accepts only tokens its identity
// provider issued and unrevoked. A missing node, npm package or curl fails
// the test with what to install.

const (
	openAIKey = "sk-node-openai-client-key"
	azureKey  = "azure-node-client-key"
	curlKey   = "sk-curl-client-key"
	localKey  = "sk-local-interop-key"
)

// lockedBuffer collects a process's output for the leak check.
type lockedBuffer struct {
	name string // of the process, for the leak check's message
	testutil.Buffer
}

// cmdTest is the state shared by the subtests of TestCommand.
type cmdTest struct {
	bin  string // the proxyauth binary
	node string
	curl string
	idp  *sandbox.TokenServer
	gate *chunkGate
	llm  *sandbox.Proxy

	mu      sync.Mutex
	outputs []*lockedBuffer // of every process, but token's stdout
	hidden  []secret        // besides the identity provider's tokens
}

// secret is a value that no output may hold, and what to call it in a
// failure's message instead of showing it.
type secret struct{ name, value string }

func (c *cmdTest) output(name string) *lockedBuffer {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := &lockedBuffer{name: name}
	c.outputs = append(c.outputs, b)
	return b
}

// hide adds a value that no output may hold. It is safe to call from a
// server's goroutine.
func (c *cmdTest) hide(name, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hidden = append(c.hidden, secret{name, value})
}

// checkLeaks fails the test if an output holds an issued token, the client
// secret, a client key, the local key or a value given to hide. It must run
// after every process has exited, so that what they log while they shut
// down is read too.
func (c *cmdTest) checkLeaks(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	secrets := append([]secret{
		{"the client secret", c.idp.ClientSecret()},
		{"localKey", localKey},
		{"openAIKey", openAIKey},
		{"azureKey", azureKey},
		{"curlKey", curlKey},
	}, c.hidden...)
	for i, tok := range c.idp.Tokens() {
		secrets = append(secrets, secret{fmt.Sprintf("token %d of the identity provider", i+1), tok})
	}
	// The failure shows the output with every secret replaced by its name.
	var pairs []string
	for _, s := range secrets {
		pairs = append(pairs, s.value, "<"+s.name+">")
	}
	redact := strings.NewReplacer(pairs...)
	for _, out := range c.outputs {
		s := out.String()
		for _, secret := range secrets {
			if strings.Contains(s, secret.value) {
				t.Errorf("the output of %s holds %s:\n%s", redact.Replace(out.name), secret.name, redact.Replace(s))
			}
		}
	}
}

// env is the environment of proxyauth: the sandbox's client, and nothing
// else of the test's own environment.
func (c *cmdTest) env(extra ...string) []string {
	return append([]string{
		"PROXYAUTH_TOKEN_URL=" + c.idp.URL,
		"PROXYAUTH_CLIENT_ID=" + c.idp.ClientID(),
		"PROXYAUTH_CLIENT_SECRET=" + c.idp.ClientSecret(),
		"PROXYAUTH_SCOPE=llm",
	}, extra...)
}

// requireTools finds node, the openai package and curl, or fails naming
// what to install.
func requireTools(t *testing.T) (node, curl string) {
	t.Helper()
	node = requireNode(t)
	if _, err := os.Stat(filepath.Join("node_modules", "openai", "package.json")); err != nil {
		t.Fatalf("the npm package openai is not installed: run `cd interop && npm ci` (make test runs it): %v", err)
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("the command's interop tests need curl on PATH: apt-get install -y curl (%v)", err)
	}
	return node, curl
}

// buildProxyauth builds cmd/proxyauth from the root module, as
// `go install github.com/proxyauth/proxyauth/cmd/proxyauth` would.
func buildProxyauth(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "proxyauth")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/proxyauth")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/proxyauth: %v\n%s", err, out)
	}
	return bin
}

// chunkGate holds chunk i+1 of a streamed answer at the gateway until the
// client has printed chunk i, so that a chunk that is not flushed through
// at once stops the stream.
type chunkGate struct {
	mu      sync.Mutex
	printed []chan struct{}
	late    []string
}

// arm makes the next stream wait for its client, for n chunks.
func (g *chunkGate) arm(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.printed = make([]chan struct{}, n)
	for i := range g.printed {
		g.printed[i] = make(chan struct{})
	}
}

func (g *chunkGate) disarm() {
	g.mu.Lock()
	g.printed = nil
	g.mu.Unlock()
}

// print records that the client printed chunk i.
func (g *chunkGate) print(i int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i < len(g.printed) {
		close(g.printed[i])
	}
}

// before is sandbox.ProxyConfig.BeforeChunk.
func (g *chunkGate) before(r *http.Request, i int) {
	g.mu.Lock()
	var wait chan struct{}
	if i > 0 && i <= len(g.printed) {
		wait = g.printed[i-1]
	}
	g.mu.Unlock()
	if wait == nil {
		return
	}
	timer := time.NewTimer(testutil.HangTimeout)
	defer timer.Stop()
	select {
	case <-wait:
	case <-r.Context().Done():
	case <-timer.C:
		g.mu.Lock()
		g.late = append(g.late, fmt.Sprintf("the client had not printed chunk %d %v after the gateway sent it", i-1, testutil.HangTimeout))
		g.mu.Unlock()
	}
}

func (g *chunkGate) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.late {
		t.Error(l)
	}
	g.late = nil
}

// gateway is a running `proxyauth serve`.
type gateway struct {
	url, addr string
}

// serve starts `proxyauth serve` on a free loopback port, stopped with
// SIGTERM, and checked to exit 0, when the test ends.
func (c *cmdTest) serve(t *testing.T, env []string, args ...string) *gateway {
	t.Helper()
	cmd := exec.Command(c.bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = env
	log := c.output("proxyauth serve " + strings.Join(args, " "))
	cmd.Stdout = log
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.Write(append(sc.Bytes(), '\n'))
			var rec struct{ Event, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Event == "listening" {
				addrs <- rec.Addr
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := testutil.Recv(t, exited, "proxyauth serve to exit after SIGTERM"); err != nil {
			t.Errorf("proxyauth serve exited with %v; want status 0\n%s", err, log)
		}
	})
	select {
	case a := <-addrs:
		return &gateway{url: "http://" + a, addr: a}
	case err := <-exited:
		exited <- err
		t.Fatalf("proxyauth serve exited (%v) before listening:\n%s", err, log)
	case <-time.After(testutil.HangTimeout):
		t.Fatalf("proxyauth serve did not listen within %v:\n%s", testutil.HangTimeout, log)
	}
	return nil
}

// nodeClient is interop/node/openai-client.mjs: the OpenAI Node SDK.
type nodeClient struct {
	stdin io.WriteCloser
	lines chan string
	out   *lockedBuffer
}

// nodeResult is the last line of a command of the node client.
type nodeResult struct {
	Kind    string `json:"kind"`
	OK      bool   `json:"ok"`
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Content string `json:"content"`
	Chunks  int    `json:"chunks"`
	Whole   int    `json:"whole"`
	Bad     int    `json:"bad"`
	First   string `json:"first"`
	I       int    `json:"i"`
}

func (c *cmdTest) startNode(t *testing.T, cfg map[string]string) *nodeClient {
	t.Helper()
	js, _ := json.Marshal(cfg)
	cmd := exec.Command(c.node, filepath.Join("node", "openai-client.mjs"), string(js))
	out := c.output("node openai-client.mjs " + cfg["client"])
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	n := &nodeClient{stdin: stdin, lines: make(chan string), out: out}
	exited := make(chan error, 1)
	go func() {
		defer close(n.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write(append(sc.Bytes(), '\n'))
			n.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		// Whatever a failed test left unread; the channel closes when
		// node has exited and its stdout ended.
		timer := time.NewTimer(testutil.HangTimeout)
		defer timer.Stop()
		for drained := false; !drained; {
			select {
			case _, ok := <-n.lines:
				drained = !ok
			case <-timer.C:
				_ = cmd.Process.Kill() // a node that does not exit when its stdin closes
			}
		}
		go func() { exited <- cmd.Wait() }()
		if err := testutil.Recv(t, exited, "node to exit after its stdin closed"); err != nil {
			t.Errorf("node exited with %v:\n%s", err, out)
		}
	})
	return n
}

// do runs one command of the node client and returns its result, calling
// chunk for every chunk line before it.
func (n *nodeClient) do(t *testing.T, cmd map[string]any, chunk func(i int, content string)) nodeResult {
	t.Helper()
	js, _ := json.Marshal(cmd)
	if _, err := n.stdin.Write(append(js, '\n')); err != nil {
		t.Fatalf("writing to node: %v\n%s", err, n.out)
	}
	for {
		line := testutil.Recv(t, n.lines, fmt.Sprintf("node to answer %s", js))
		var r nodeResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("node printed %q: %v\n%s", line, err, n.out)
		}
		switch r.Kind {
		case "chunk":
			if chunk != nil {
				chunk(r.I, r.Content)
			}
		case "progress": // a stream of many is done; wait for the next line
		case "done":
			return r
		default:
			t.Fatalf("node printed %q", line)
		}
	}
}

// seenSince checks what the gateway saw from index from on: every request
// carried one bearer token the identity provider issued, and no client key
// under any header. It returns the statuses.
func (c *cmdTest) seenSince(t *testing.T, from int, keys ...string) []sandbox.Seen {
	t.Helper()
	seen := c.llm.Seen()[from:]
	for i, s := range seen {
		tok, ok := strings.CutPrefix(s.Authorization, "Bearer ")
		if !ok || !c.idp.Known(tok) || len(s.Header.Values("Authorization")) != 1 {
			t.Errorf("request %d to %s carried Authorization %q; want one token of the identity provider", from+i, s.Path, s.Authorization)
		}
		if s.APIKey != "" || s.Header.Get("X-Api-Key") != "" {
			t.Errorf("request %d to %s carried an api-key or x-api-key", from+i, s.Path)
		}
		for k, vs := range s.Header {
			for _, key := range keys {
				if strings.Contains(strings.Join(vs, " "), key) {
					t.Errorf("request %d reached the gateway with a client key in %s", from+i, k)
				}
			}
		}
	}
	return seen
}

func statuses(seen []sandbox.Seen) string {
	var b []string
	for _, s := range seen {
		b = append(b, fmt.Sprint(s.Status))
	}
	return strings.Join(b, " ")
}

// TestCommand runs the command with the real clients. Its subtests share
// one identity provider and one gateway, and run in order.
func TestCommand(t *testing.T) {
	node, curl := requireTools(t)
	c := &cmdTest{bin: buildProxyauth(t), node: node, curl: curl, gate: &chunkGate{}}
	c.idp = sandbox.NewTokenServer(sandbox.TokenServerConfig{ClientSecret: "interop-secret-not-to-show"})
	t.Cleanup(c.idp.Close)
	c.llm = sandbox.NewProxy(c.idp, sandbox.ProxyConfig{StreamChunks: 4, BeforeChunk: c.gate.before})
	t.Cleanup(c.llm.Close)
	// Registered before the first serve's cleanup, so that it runs after
	// that serve has exited (cleanups run last first) and after the
	// subtests' processes, which their own cleanups have stopped.
	t.Cleanup(func() { c.checkLeaks(t) })

	gw := c.serve(t, c.env(), "--upstream", c.llm.Root)
	t.Run("OpenAI SDK", func(t *testing.T) { c.testSDK(t, gw, "openai") })
	t.Run("AzureOpenAI SDK", func(t *testing.T) { c.testSDK(t, gw, "azure") })
	t.Run("metrics read by expfmt", func(t *testing.T) { c.testMetrics(t, gw) })
	t.Run("600 streamed POSTs", func(t *testing.T) { c.testManyStreams(t) })
	t.Run("curl", func(t *testing.T) { c.testCurl(t, gw) })
	t.Run("token", func(t *testing.T) { c.testToken(t) })
	t.Run("refusals", func(t *testing.T) { c.testRefusals(t, gw) })
	t.Run("local key", func(t *testing.T) { c.testLocalKey(t) })
	t.Run("private_key_jwt and assertion file", func(t *testing.T) { c.testSecretless(t) })
}

// testSDK drives one SDK client through the gateway: chat completions, with
// and without streaming, and again after the identity provider revoked the
// token, which the gateway heals for POSTs by resending with a new one.
func (c *cmdTest) testSDK(t *testing.T, gw *gateway, kind string) {
	cfg := map[string]string{"client": "openai", "baseURL": gw.url + "/v1", "apiKey": openAIKey}
	wantPath, wantQuery := "/v1/chat/completions", ""
	if kind == "azure" {
		cfg = map[string]string{"client": "azure", "endpoint": gw.url, "apiKey": azureKey, "deployment": "gpt-4o-mini", "apiVersion": "2024-10-21"}
		wantPath, wantQuery = "/openai/deployments/gpt-4o-mini/chat/completions", "api-version=2024-10-21"
	}
	n := c.startNode(t, cfg)
	from := len(c.llm.Seen())

	if r := n.do(t, map[string]any{"op": "chat"}, nil); !r.OK || r.Content != "pong" {
		t.Fatalf("chat: %+v", r)
	}
	stream := func(what string) {
		t.Helper()
		c.gate.arm(4)
		defer c.gate.disarm()
		var got []string
		r := n.do(t, map[string]any{"op": "chat", "stream": true}, func(i int, content string) {
			got = append(got, content)
			c.gate.print(i)
		})
		c.gate.check(t)
		if want := "chunk-0 |chunk-1 |chunk-2 |chunk-3 "; !r.OK || strings.Join(got, "|") != want {
			t.Errorf("%s: chunks %q, result %+v; want %q, each printed before the next was sent", what, got, r, want)
		}
	}
	stream("streamed chat")

	c.idp.RevokeAll()
	if r := n.do(t, map[string]any{"op": "chat"}, nil); !r.OK || r.Content != "pong" {
		t.Errorf("chat after the token was revoked: %+v; want it healed", r)
	}
	c.idp.RevokeAll()
	stream("streamed chat after the token was revoked")

	seen := c.seenSince(t, from, openAIKey, azureKey)
	if got := statuses(seen); got != "200 200 401 200 401 200" {
		t.Errorf("the gateway answered %s; want 200 200 401 200 401 200: each revoked token refused once, the POST resent", got)
	}
	for _, s := range seen {
		if s.Path != wantPath || s.RawQuery != wantQuery {
			t.Errorf("the gateway got %s?%s; want %s?%s", s.Path, s.RawQuery, wantPath, wantQuery)
		}
	}
}

// testMetrics reads /metrics with the Prometheus text parser, as a
// monitoring system does, and checks the counters of the SDK subtests.
func (c *cmdTest) testMetrics(t *testing.T, gw *gateway) {
	resp, err := http.Get(gw.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeTextPlain {
		t.Errorf("Content-Type %q is not the Prometheus text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("expfmt cannot parse /metrics: %v", err)
	}
	value := func(name string, labels ...string) (float64, dto.MetricType) {
		f := families[name]
		if f == nil {
			t.Errorf("/metrics has no %s", name)
			return -1, 0
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				var found bool
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			if f.GetType() == dto.MetricType_GAUGE {
				return m.GetGauge().GetValue(), f.GetType()
			}
			return m.GetCounter().GetValue(), f.GetType()
		}
		t.Errorf("/metrics has no %s with %q", name, labels)
		return -1, 0
	}
	// Two SDKs, each: two requests, two healed ones (a 401 and a resend),
	// and one token per revocation after the first.
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
		typ    dto.MetricType
	}{
		{"proxyauth_token_fetches_total", nil, 5, dto.MetricType_COUNTER},
		{"proxyauth_token_fetch_errors_total", nil, 0, dto.MetricType_COUNTER},
		{"proxyauth_retries_total", nil, 4, dto.MetricType_COUNTER},
		{"proxyauth_requests_total", []string{"outcome", "answered"}, 8, dto.MetricType_COUNTER},
		{"proxyauth_requests_total", []string{"outcome", "no_token"}, 0, dto.MetricType_COUNTER},
		{"proxyauth_refused_requests_total", []string{"reason", "host"}, 0, dto.MetricType_COUNTER},
		{"proxyauth_in_flight_requests", nil, 0, dto.MetricType_GAUGE},
	} {
		if got, typ := value(tt.name, tt.labels...); got != tt.want || typ != tt.typ {
			t.Errorf("%s%q = %v (%v); want %v (%v)", tt.name, tt.labels, got, typ, tt.want, tt.typ)
		}
	}
}

// testManyStreams sends 600 streamed chat completions in a row from the
// Node SDK, through a gateway that reads bodies for replay and through one
// that streams them, and checks that every stream arrives whole.
func (c *cmdTest) testManyStreams(t *testing.T) {
	llm := sandbox.NewProxy(c.idp, sandbox.ProxyConfig{StreamChunks: 4, DiscardSeen: true})
	defer llm.Close()
	for _, replay := range []string{"16MiB", "0"} {
		gw := c.serve(t, c.env(), "--upstream", llm.URL, "--max-replay-body", replay)
		n := c.startNode(t, map[string]string{"client": "openai", "baseURL": gw.url, "apiKey": openAIKey})
		r := n.do(t, map[string]any{"op": "streams", "count": 600, "chunks": 4}, nil)
		if !r.OK || r.Whole != 600 {
			t.Errorf("--max-replay-body %s: %d of 600 streams whole, %d not; the first: %s", replay, r.Whole, r.Bad, r.First)
		}
	}
}

// curlRun runs curl with args and returns its stdout and exit status.
// curl gives up on a hung request itself (exit 28, which callers report);
// the context, twice as long, only kills a curl that does not.
func (c *cmdTest) curlRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*testutil.HangTimeout)
	defer cancel()
	maxTime := strconv.FormatFloat(testutil.HangTimeout.Seconds(), 'f', -1, 64)
	cmd := exec.CommandContext(ctx, c.curl, append([]string{"-sS", "--max-time", maxTime}, args...)...)
	var stdout bytes.Buffer
	out := c.output("curl " + args[len(args)-1]) // its URL: the headers may hold a key
	cmd.Stdout = io.MultiWriter(&stdout, out)
	cmd.Stderr = out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("curl: %v", err)
	}
	return stdout.String(), code
}

// testCurl sends chat completions with curl, non-streamed and streamed
// with -N: each chunk is printed by curl before the gateway sends the next.
func (c *cmdTest) testCurl(t *testing.T, gw *gateway) {
	from := len(c.llm.Seen())
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}`
	out, code := c.curlRun(t, "-H", "Content-Type: application/json", "-H", "Authorization: Bearer "+curlKey, "-d", body, gw.url+"/v1/chat/completions")
	if code != 0 || !strings.Contains(out, `"content":"pong"`) {
		t.Errorf("curl chat: exit %d, %q", code, out)
	}

	c.gate.arm(4)
	defer c.gate.disarm()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.curl, "-sS", "-N", "-H", "Content-Type: application/json", "-H", "Authorization: Bearer "+curlKey,
		"-d", strings.Replace(body, `"messages"`, `"stream":true,"messages"`, 1), gw.url+"/v1/chat/completions")
	log := c.output("curl -N")
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var chunks []string
	done := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		log.Write(append(sc.Bytes(), '\n'))
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil || len(chunk.Choices) != 1 {
			t.Fatalf("curl printed %q", data)
		}
		c.gate.print(len(chunks))
		chunks = append(chunks, chunk.Choices[0].Delta.Content)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("curl -N: %v", err)
	}
	c.gate.check(t)
	if want := "chunk-0 |chunk-1 |chunk-2 |chunk-3 "; strings.Join(chunks, "|") != want || !done {
		t.Errorf("curl -N printed %q, [DONE] %v; want %q and [DONE]", chunks, done, want)
	}
	if got := statuses(c.seenSince(t, from, curlKey)); got != "200 200" {
		t.Errorf("the gateway answered %s; want 200 200", got)
	}
}

// testToken checks `proxyauth token --header` and `--json`: what they print
// opens the gateway to curl.
func (c *cmdTest) testToken(t *testing.T) {
	token := func(arg string) string {
		t.Helper()
		cmd := exec.Command(c.bin, "token", arg)
		cmd.Env = c.env()
		var stdout bytes.Buffer
		stderr := c.output("proxyauth token " + arg)
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		if err := cmd.Run(); err != nil || stderr.String() != "" {
			t.Fatalf("proxyauth token %s: %v\n%s", arg, err, stderr)
		}
		return stdout.String()
	}
	header := token("--header")
	tok, ok := strings.CutPrefix(strings.TrimSuffix(header, "\n"), "Authorization: Bearer ")
	if !ok || !c.idp.Valid(tok) {
		t.Fatalf("token --header printed %q; want a header with a valid token", header)
	}
	if out, code := c.curlRun(t, "-H", strings.TrimSuffix(header, "\n"), c.llm.URL+"/models"); code != 0 || !strings.Contains(out, "gpt-4o-mini") {
		t.Errorf("curl with the header of token --header: exit %d, %q", code, out)
	}

	before := time.Now()
	var js struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresOn   int64  `json:"expires_on"`
	}
	if err := json.Unmarshal([]byte(token("--json")), &js); err != nil {
		t.Fatal(err)
	}
	if !c.idp.Valid(js.AccessToken) || js.TokenType != "Bearer" || js.ExpiresOn < before.Add(59*time.Minute).Unix() || js.ExpiresOn > time.Now().Add(time.Hour).Unix() {
		t.Errorf("token --json printed %+v; want a valid token expiring in an hour", js)
	}
	out, code := c.curlRun(t, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+js.AccessToken, c.llm.URL+"/models")
	if code != 0 || out != "200" {
		t.Errorf("curl with the token of token --json: exit %d, %q", code, out)
	}
}

// testRefusals checks with curl that the gateway is no open proxy and
// refuses a rebound host name and what a browser sends for a page of
// another origin, and that nothing refused reaches the gateway behind it.
func (c *cmdTest) testRefusals(t *testing.T, gw *gateway) {
	before := c.llm.Requests()
	_, port, _ := strings.Cut(gw.addr, ":")
	status := func(args ...string) string {
		t.Helper()
		out, _ := c.curlRun(t, append([]string{"-o", "/dev/null", "-w", "%{http_code} %{http_connect}"}, args...)...)
		return out
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		// curl sends absolute-form to a proxy for http URLs, CONNECT for
		// https ones or with -p.
		{"forward proxy", []string{"--proxy", gw.url, "http://example.com/v1/models"}, "400 000"},
		{"forward proxy to the gateway", []string{"--proxy", gw.url, c.llm.URL + "/models"}, "400 000"},
		{"CONNECT", []string{"--proxy", gw.url, "https://example.com/"}, "000 405"},
		{"CONNECT tunnel", []string{"-p", "--proxy", gw.url, "http://example.com/"}, "000 405"},
		// A name that resolves to loopback, as a rebound DNS name does.
		{"rebound name", []string{"--resolve", "attacker.example:" + port + ":127.0.0.1", "http://attacker.example:" + port + "/v1/models"}, "421 000"},
		{"Host header", []string{"-H", "Host: attacker.example:" + port, gw.url + "/v1/models"}, "421 000"},
		// What a browser sends for a form on another site that posts to
		// the gateway: the gateway's own Host, with the page's origin.
		{"a web page's form", []string{"-H", "Origin: https://attacker.example", "-H", "Sec-Fetch-Site: cross-site",
			"-H", "Content-Type: text/plain", "-d", `{"model":"gpt-4o-mini","messages":[]}`, gw.url + "/v1/chat/completions"}, "403 000"},
		{"a web page's GET", []string{"-H", "Sec-Fetch-Site: same-site", gw.url + "/v1/models"}, "403 000"},
		{"healthz", []string{gw.url + "/healthz"}, "200 000"},
		{"localhost", []string{"http://localhost:" + port + "/v1/models"}, "200 000"},
	} {
		if got := status(tt.args...); got != tt.want {
			t.Errorf("%s: curl got %q; want %q (http_code http_connect)", tt.name, got, tt.want)
		}
	}
	if got := c.llm.Requests() - before; got != 1 {
		t.Errorf("the gateway behind got %d requests; want 1, from localhost", got)
	}
}

// testLocalKey checks --local-key-env with the SDKs and curl: without the
// key a client gets 401; with it, as OpenAI's bearer token or Azure's
// api-key, it gets through, and the key goes no further.
func (c *cmdTest) testLocalKey(t *testing.T) {
	gw := c.serve(t, c.env("PROXYAUTH_LOCAL_KEY="+localKey), "--upstream", c.llm.Root, "--local-key-env", "PROXYAUTH_LOCAL_KEY")
	from := len(c.llm.Seen())
	wrong := c.startNode(t, map[string]string{"client": "openai", "baseURL": gw.url + "/v1", "apiKey": openAIKey})
	if r := wrong.do(t, map[string]any{"op": "chat"}, nil); r.OK || r.Status != http.StatusUnauthorized || !strings.Contains(r.Error, "local key") {
		t.Errorf("OpenAI without the local key: %+v; want 401 saying the local key is required", r)
	}
	right := c.startNode(t, map[string]string{"client": "openai", "baseURL": gw.url + "/v1", "apiKey": localKey})
	if r := right.do(t, map[string]any{"op": "chat"}, nil); !r.OK {
		t.Errorf("OpenAI with the local key: %+v", r)
	}
	azure := c.startNode(t, map[string]string{"client": "azure", "endpoint": gw.url, "apiKey": localKey, "deployment": "d", "apiVersion": "2024-10-21"})
	if r := azure.do(t, map[string]any{"op": "chat"}, nil); !r.OK {
		t.Errorf("AzureOpenAI with the local key as api-key: %+v", r)
	}
	if out, _ := c.curlRun(t, "-o", "/dev/null", "-w", "%{http_code}", gw.url+"/v1/models"); out != "401" {
		t.Errorf("curl without the local key: %q; want 401", out)
	}
	if out, _ := c.curlRun(t, "-o", "/dev/null", "-w", "%{http_code}", "-H", "x-api-key: "+localKey, gw.url+"/v1/models"); out != "200" {
		t.Errorf("curl with the local key as x-api-key: %q; want 200", out)
	}
	if got := statuses(c.seenSince(t, from, localKey, openAIKey)); got != "200 200 200" {
		t.Errorf("the gateway answered %s; want 200 200 200: the refused requests never reached it", got)
	}
}

// testSecretless runs serve with --private-key-file and with
// --assertion-file against panva's oidc-provider, whose API accepts only
// the tokens the provider issued. No output may show the key, the
// assertion or an access token that the provider issued.
func (c *cmdTest) testSecretless(t *testing.T) {
	key := mustKey(rsa.GenerateKey(rand.Reader, 2048))
	federated := mustKey(rsa.GenerateKey(rand.Reader, 2048))
	p := startOIDCProvider(t,
		oidcClient{id: "cmd-key", pub: key.Public(), kid: "cmd-2026"},
		oidcClient{id: "cmd-workload", pub: federated.Public()},
	)
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// A key shown as its file, or as base64 of its DER in one piece, holds
	// every full line of the PEM body. The shorter last line is left out:
	// a string that short could turn up by chance.
	var keyLines int
	for i, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) == 64 {
			c.hide(fmt.Sprintf("line %d of the private key's PEM", i+1), line)
			keyLines++
		}
	}
	if keyLines < 20 {
		t.Fatalf("the PEM of a 2048-bit RSA key has %d lines of 64 characters; want its body", keyLines)
	}
	// The assertion a workload platform would write for the client.
	now := time.Now()
	assertion, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "cmd-workload", "sub": "cmd-workload", "aud": p.tokenURL, "jti": rand.Text(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(4 * time.Minute).Unix(),
	}).SignedString(federated)
	if err != nil {
		t.Fatal(err)
	}
	assertionFile := filepath.Join(dir, "assertion")
	if err := os.WriteFile(assertionFile, []byte(assertion), 0o600); err != nil {
		t.Fatal(err)
	}
	c.hide("the client assertion", assertion)

	// The API behind a proxy that takes note of the access tokens serve
	// sends it, which are the provider's: the leak check looks for them.
	upstream, err := url.Parse(p.upstream)
	if err != nil {
		t.Fatal(err)
	}
	toAPI := &http.Transport{}
	t.Cleanup(toAPI.CloseIdleConnections)
	forward := httputil.NewSingleHostReverseProxy(upstream)
	forward.Transport = toAPI
	var tokensSeen atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
			c.hide("an access token of oidc-provider", tok)
			tokensSeen.Add(1)
		}
		forward.ServeHTTP(w, r)
	}))
	// Closed after the serves below have exited: their cleanups come later,
	// so they run first.
	t.Cleanup(api.Close)

	for _, tt := range []struct {
		client string
		args   []string
	}{
		{"cmd-key", []string{"--private-key-file", keyFile, "--key-id", "cmd-2026"}},
		{"cmd-workload", []string{"--assertion-file", assertionFile}},
	} {
		env := []string{"PROXYAUTH_TOKEN_URL=" + p.tokenURL, "PROXYAUTH_CLIENT_ID=" + tt.client, "PROXYAUTH_SCOPE=llm.invoke"}
		gw := c.serve(t, env, append([]string{"--upstream", api.URL}, tt.args...)...)
		before := tokensSeen.Load()
		out, code := c.curlRun(t, "-H", "Authorization: Bearer "+curlKey, gw.url+"/v1/models")
		var a upstreamAnswer
		if code != 0 || json.Unmarshal([]byte(out), &a) != nil || a.ClientID != tt.client || a.Scope != "llm.invoke" {
			t.Errorf("%s through serve: exit %d, %q; want the API's answer for the client", tt.client, code, out)
		}
		if tokensSeen.Load() == before {
			t.Errorf("%s through serve: the API saw no bearer token to look for in the outputs", tt.client)
		}
	}
}
