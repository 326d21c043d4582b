package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// TestMain fails the run if a test leaves a goroutine behind: a server, a
// connection or a token fetch that outlived its command.
func TestMain(m *testing.M) { goleak.VerifyTestMain(removesBinary{m}) }

// removesBinary removes the binary that buildBinary built after the tests.
type removesBinary struct{ m *testing.M }

func (r removesBinary) Run() int {
	code := r.m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// The tests run the command in-process through command.run, with their own
// environment, output and signal channel, against internal/sandbox (a
// token endpoint and an OpenAI-compatible proxy that accepts only that
// endpoint's valid tokens) or an httptest server that records what it got.
// TestServeSIGTERMDrains runs the real binary.

// sandboxEnv is the environment of a command that gets its tokens from idp.
func sandboxEnv(idp *sandbox.TokenServer) map[string]string {
	return map[string]string{
		"PROXYAUTH_TOKEN_URL":     idp.URL,
		"PROXYAUTH_CLIENT_ID":     idp.ClientID(),
		"PROXYAUTH_CLIENT_SECRET": idp.ClientSecret(),
	}
}

func newIdP(t *testing.T) *sandbox.TokenServer {
	t.Helper()
	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{ClientSecret: "s3cret-that-must-not-show"})
	t.Cleanup(idp.Close)
	return idp
}

func newLLM(t *testing.T, idp *sandbox.TokenServer, cfg sandbox.ProxyConfig) *sandbox.Proxy {
	t.Helper()
	p := sandbox.NewProxy(idp, cfg)
	t.Cleanup(p.Close)
	return p
}

// result is what a finished command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// runCommand runs the command with args and env to the end.
func runCommand(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runWith(t, &command{}, env, args...)
}

func runWith(t *testing.T, c *command, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut testutil.Buffer
	c.stdout, c.stderr = &out, &errOut
	c.getenv = func(k string) string { return env[k] }
	if c.signals == nil {
		c.signals = make(chan os.Signal)
	}
	done := make(chan int, 1)
	go func() { done <- c.run(args) }()
	code := testutil.Recv(t, done, "the command to return")
	return result{code, out.String(), errOut.String()}
}

// server is `proxyauth serve` running in-process.
type server struct {
	url    string // http://127.0.0.1:port
	addr   string // 127.0.0.1:port
	port   string
	sig    chan os.Signal
	done   chan int
	stderr *testutil.Buffer
	client *http.Client
	exited *int
}

// startServe runs `proxyauth serve` with args (and --listen 127.0.0.1:0
// unless args set --listen) until the test ends, when it gets SIGTERM.
func startServe(t *testing.T, c *command, env map[string]string, args ...string) *server {
	t.Helper()
	if !strings.Contains(strings.Join(args, " "), "--listen") {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	s := &server{sig: make(chan os.Signal, 2), done: make(chan int, 1), stderr: &testutil.Buffer{}}
	ready := make(chan net.Addr, 1)
	c.stdout, c.stderr = io.Discard, s.stderr
	c.getenv = func(k string) string { return env[k] }
	c.signals = s.sig
	c.ready = func(a net.Addr) { ready <- a }
	go func() { s.done <- c.run(append([]string{"serve"}, args...)) }()
	select {
	case a := <-ready:
		s.addr = a.String()
	case code := <-s.done:
		t.Fatalf("serve exited with %d before listening; stderr:\n%s", code, s.stderr)
	case <-time.After(testutil.HangTimeout):
		t.Fatalf("serve did not listen within %v; stderr:\n%s", testutil.HangTimeout, s.stderr)
	}
	_, s.port, _ = net.SplitHostPort(s.addr)
	s.url = "http://" + s.addr
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	s.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if s.exited == nil {
			s.stop(t)
		}
	})
	return s
}

// stop sends SIGTERM and returns the exit status.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.client.Transport.(*http.Transport).CloseIdleConnections()
	s.sig <- syscall.SIGTERM
	code := testutil.Recv(t, s.done, "serve to exit after SIGTERM")
	s.exited = &code
	return code
}

// do sends a request to the server and returns the status and body.
func (s *server) do(t *testing.T, method, path string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, string(b)
}

// raw sends request, as it is, on a new connection and returns the
// response. It is for requests that net/http's client would not send.
func (s *server) raw(t *testing.T, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testutil.HangTimeout))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", request, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// logRecords parses JSON log lines.
func logRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

// events returns the JSON log records whose event is name.
func events(t *testing.T, out, name string) []map[string]any {
	t.Helper()
	var got []map[string]any
	for _, r := range logRecords(t, out) {
		if r["event"] == name {
			got = append(got, r)
		}
	}
	return got
}

// apiError decodes the OpenAI-style error body of the gateway.
func apiError(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e.Error.Code, e.Error.Message
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// buildBinary builds the command once per test run, for the tests that
// signal a real process.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "proxyauth-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "proxyauth")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v\n%s", binErr, binPath)
	}
	return binPath
}
