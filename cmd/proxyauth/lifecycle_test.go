package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// TestServeTimeouts checks that the gateway drops clients that are slow to
// send their headers or a body it reads for replay, and idle connections,
// but not a streamed answer that lasts many times longer than any timeout.
func TestServeTimeouts(t *testing.T) {
	idp := newIdP(t)
	release := make(chan struct{})
	llm := newLLM(t, idp, sandbox.ProxyConfig{StreamChunks: 3, BeforeChunk: func(r *http.Request, i int) {
		if i == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}})
	// Each check makes short only the timeouts it is about: a loaded
	// machine can pause the test for longer than a short timeout between
	// two of its steps, and another short timeout would then end the
	// connection first.
	const short, long = 100 * time.Millisecond, testutil.HangTimeout
	serve := func(to timeouts, args ...string) *server {
		return startServe(t, &command{timeouts: &to}, sandboxEnv(idp), args...)
	}

	// closed reports what ended a connection on which the client sent
	// what, then nothing: a bounded read that must end before HangTimeout.
	closed := func(s *server, what string) string {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(testutil.HangTimeout))
		io.WriteString(conn, what)
		b, err := io.ReadAll(conn)
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Errorf("after %q the gateway kept the connection open for %v", what, testutil.HangTimeout)
		}
		return string(b)
	}
	s := serve(timeouts{readHeader: short, body: long, idle: long}, "--upstream", llm.URL)
	closed(s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:"+s.port+"\r\n") // half the headers
	s = serve(timeouts{readHeader: long, body: short, idle: long}, "--upstream", llm.URL)
	answer := closed(s, "POST /chat/completions HTTP/1.1\r\nHost: 127.0.0.1:"+s.port+"\r\nContent-Length: 100\r\n\r\n{\"model\":")
	if !strings.HasPrefix(answer, "HTTP/1.1 408") {
		t.Errorf("a body that stopped coming: answer %q; want 408", answer)
	}
	s = serve(timeouts{readHeader: long, body: long, idle: short}, "--upstream", llm.URL)
	answer = closed(s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:"+s.port+"\r\n\r\n") // then idle
	if !strings.HasPrefix(answer, "HTTP/1.1 200") || !strings.HasSuffix(answer, "ok\n") {
		t.Errorf("an idle connection: answer %q; want 200 ok, then the close", answer)
	}
	if llm.Requests() != 0 {
		t.Errorf("the upstream got %d requests; want none", llm.Requests())
	}

	// A stream that pauses for ten times the timeouts that could apply to
	// it: the body's (read for replay) and the idle connection's.
	s = serve(timeouts{readHeader: long, body: short, idle: short}, "--upstream", llm.URL)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/chat/completions", strings.NewReader(chatBody(true, 0)))
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type out struct {
		n    int
		done bool
		err  error
	}
	res := make(chan out, 1)
	first := make(chan struct{})
	go func() {
		c, done, err := readStream(resp.Body, func(string) {
			select {
			case <-first:
			default:
				close(first)
			}
		})
		res <- out{len(c), done, err}
	}()
	testutil.Recv(t, first, "the first chunk")
	time.Sleep(10 * short) // a lower bound: a loaded machine only waits longer
	close(release)
	if o := testutil.Recv(t, res, "the stream to end"); o.n != 3 || !o.done || o.err != nil {
		t.Errorf("a stream that paused: %d chunks, done %v, %v; want 3 and [DONE]", o.n, o.done, o.err)
	}

	// A body longer than the replay limit that pauses for ten times the
	// body timeout after the part read for replay: the rest streams on.
	rec := newRecorder(t)
	s2 := serve(timeouts{readHeader: long, body: short, idle: long}, "--upstream", rec.URL, "--max-replay-body", "16")
	conn, err := net.Dial("tcp", s2.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testutil.HangTimeout))
	// The headers and the first chunk, longer than the limit, go in one
	// write: the server has them together, so the body timeout cannot fire
	// before the part to replay is in, however slow this machine is.
	// Of unknown length: the gateway reads up to the limit to find out
	// whether it can replay the body.
	io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: 127.0.0.1:"+s2.port+"\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n"+strings.Repeat("a", 32)+"\r\n")
	time.Sleep(10 * short) // a lower bound, as above
	io.WriteString(conn, "20\r\n"+strings.Repeat("b", 32)+"\r\n0\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a long body that paused: %v, %v; want 200", resp, err)
	}
	if got := rec.requests(); len(got) != 1 || got[0].body != strings.Repeat("a", 32)+strings.Repeat("b", 32) {
		t.Errorf("the upstream got %d requests %v; want the whole body once", len(got), got)
	}
}

// TestServeDrainCut checks that SIGINT drains for --shutdown-timeout, then
// cuts what is still streaming and exits 0, and that the upstream request
// of the cut stream ends too.
func TestServeDrainCut(t *testing.T) {
	idp := newIdP(t)
	reached, upstreamDone := make(chan struct{}), make(chan struct{})
	llm := newLLM(t, idp, sandbox.ProxyConfig{StreamChunks: 2, BeforeChunk: func(r *http.Request, i int) {
		if i == 1 {
			close(reached)
			select {
			case <-r.Context().Done():
				close(upstreamDone)
			case <-t.Context().Done():
			}
		}
	}})
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", llm.URL, "--shutdown-timeout", "200ms", "--log-format", "json")
	req, _ := http.NewRequest(http.MethodPost, s.url+"/chat/completions", strings.NewReader(chatBody(true, 0)))
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testutil.Recv(t, reached, "the upstream to hold the stream")
	s.sig <- os.Interrupt
	code := testutil.Recv(t, s.done, "serve to exit after the shutdown timeout")
	s.exited = &code
	if code != exitOK {
		t.Errorf("exit status %d; want 0", code)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("the held stream ended cleanly; want it cut")
	}
	testutil.Recv(t, upstreamDone, "the upstream request of the cut stream to end")
	log := s.stderr.String()
	for _, ev := range []string{"draining", "drain_cut", "stopped"} {
		if len(events(t, log, ev)) != 1 {
			t.Errorf("want one %q log record:\n%s", ev, log)
		}
	}
}

// TestServeSIGTERMDrains runs the real binary: SIGTERM stops it from
// accepting connections, the request in flight finishes with its whole
// answer, and the process exits 0.
func TestServeSIGTERMDrains(t *testing.T) {
	bin := buildBinary(t)
	idp := newIdP(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, strings.Repeat("whole answer ", 1000))
	}))
	defer up.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	cmd := exec.Command(bin, "serve", "--upstream", up.URL, "--listen", "127.0.0.1:0", "--log-format", "json")
	for k, v := range sandboxEnv(idp) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout testutil.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{}) // closed once Wait has returned
	var log testutil.Buffer
	records := make(chan map[string]any, 100)
	go func() {
		defer close(waited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.Write([]byte(sc.Text() + "\n"))
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				records <- m
			}
		}
		close(records)
		exited <- cmd.Wait()
	}()
	defer func() {
		select {
		case <-waited:
		default:
			cmd.Process.Kill() // a process that hangs; the test has failed
		}
	}()
	waitEvent := func(name string) map[string]any {
		t.Helper()
		timer := time.NewTimer(testutil.HangTimeout)
		defer timer.Stop()
		for {
			select {
			case m, ok := <-records:
				if !ok {
					t.Fatalf("the process ended before logging %q:\n%s", name, log.String())
				}
				if m["event"] == name {
					return m
				}
			case <-timer.C:
				t.Fatalf("the process did not log %q within %v:\n%s", name, testutil.HangTimeout, log.String())
			}
		}
	}
	addr, _ := waitEvent("listening")["addr"].(string)

	type answer struct {
		status int
		body   string
		err    error
	}
	answers := make(chan answer, 1)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	go func() {
		resp, err := client.Get("http://" + addr + "/slow")
		if err != nil {
			answers <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answers <- answer{resp.StatusCode, string(b), err}
	}()
	testutil.Recv(t, arrived, "the request to reach the upstream")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitEvent("draining")
	testutil.Eventually(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-exited:
		t.Fatalf("the process exited (%v) with a request in flight", err)
	default:
	}
	close(release)
	a := testutil.Recv(t, answers, "the request in flight to be answered")
	if a.err != nil || a.status != http.StatusOK || a.body != strings.Repeat("whole answer ", 1000) {
		t.Errorf("the request in flight got %d, %d bytes, %v; want 200 and the whole answer", a.status, len(a.body), a.err)
	}
	waitEvent("stopped")
	if err := testutil.Recv(t, exited, "the process to exit"); err != nil {
		t.Errorf("the process exited with %v; want status 0\n%s", err, log.String())
	}
	for _, secret := range append(idp.Tokens(), idp.ClientSecret()) {
		if strings.Contains(log.String()+stdout.String(), secret) {
			t.Errorf("the output holds a token or the secret %q", secret)
		}
	}
}

// TestServeLogs checks the logs at debug level across a run with a healed
// 401, a refusal and a failed token request: every record names its event,
// and none holds a token, the client secret or the local key.
func TestServeLogs(t *testing.T) {
	idp := newIdP(t)
	llm := newLLM(t, idp, sandbox.ProxyConfig{})
	env := sandboxEnv(idp)
	env["LOCAL"] = "sk-local-key-not-to-log"
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			s := startServe(t, &command{}, env, "--upstream", llm.URL, "--log-format", format, "--log-level", "debug", "--local-key-env", "LOCAL")
			key := http.Header{"Authorization": {"Bearer " + env["LOCAL"]}}
			s.do(t, http.MethodPost, "/chat/completions?key=query-secret", key, chatBody(false, 0))
			idp.RevokeAll()
			s.do(t, http.MethodPost, "/chat/completions", key, chatBody(false, 0))
			s.do(t, http.MethodGet, "/models", http.Header{"Authorization": {"Bearer wrong-local-key"}}, "")
			s.raw(t, "GET /models HTTP/1.1\r\nHost: attacker.example:"+s.port+"\r\n\r\n")
			idp.SetDown(http.StatusServiceUnavailable)
			idp.RevokeAll()
			s.do(t, http.MethodPost, "/chat/completions", key, chatBody(false, 0)) // the 401 as it came
			s.do(t, http.MethodPost, "/chat/completions", key, chatBody(false, 0)) // no token
			idp.SetDown(0)
			s.stop(t)

			log := s.stderr.String()
			for _, secret := range append(idp.Tokens(), idp.ClientSecret(), env["LOCAL"], "wrong-local-key", "query-secret") {
				if strings.Contains(log, secret) {
					t.Errorf("the log holds %q", secret)
				}
			}
			if format == "text" {
				if !strings.Contains(log, "event=retry") || !strings.Contains(log, "event=listening") {
					t.Errorf("the text log lacks events:\n%s", log)
				}
				return
			}
			seen := map[string]int{}
			for _, r := range logRecords(t, log) {
				ev, _ := r["event"].(string)
				if ev == "" {
					t.Errorf("a record without an event: %v", r)
				}
				seen[ev]++
			}
			for ev, want := range map[string]int{
				"listening": 1, "token_fetched": 2, "retry": 1, "refused": 2, "no_token": 1,
				"retry_skipped": 1, "request": 6, "draining": 1, "stopped": 1,
			} {
				if seen[ev] != want {
					t.Errorf("%d %q records; want %d (all: %v)", seen[ev], ev, want, seen)
				}
			}
			// One, or more if the backoff ended between the last two
			// requests on a slow machine.
			if seen["fetch_failed"] < 1 {
				t.Errorf("no fetch_failed record (all: %v)", seen)
			}
			refusals := events(t, log, "refused")
			if got := fmt.Sprintf("%v %v", refusals[0]["reason"], refusals[1]["reason"]); got != "local_key host" {
				t.Errorf("refusal reasons %s; want local_key host", got)
			}
		})
	}
}

// TestServerErrorLog checks that net/http's own messages become debug
// records with an event, like every other line of a JSON log.
func TestServerErrorLog(t *testing.T) {
	var buf strings.Builder
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := newServer(http.NotFoundHandler(), logger, defaultTimeouts)
	srv.ErrorLog.Print("http: panic serving 127.0.0.1:5555: boom")
	recs := logRecords(t, buf.String())
	if len(recs) != 1 || recs[0]["event"] != "http_server" || recs[0]["level"] != "DEBUG" ||
		!strings.Contains(fmt.Sprint(recs[0]["msg"]), "panic serving") {
		t.Errorf("the server's message was logged as %v; want one debug record with event http_server", recs)
	}
}

// TestServeListenFails checks that an address the gateway cannot listen on
// is a failure at run time (status 1) whose message names --listen and the
// cause, before any token request.
func TestServeListenFails(t *testing.T) {
	idp := newIdP(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	r := runCommand(t, sandboxEnv(idp), "serve", "--upstream", "http://127.0.0.1:9", "--listen", addr)
	if r.code != exitFailure || !strings.Contains(r.stderr, "proxyauth serve: --listen "+addr+": ") || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("status %d, stderr %q; want 1 and a message naming --listen %s and the cause", r.code, r.stderr, addr)
	}
	if n := idp.Requests(); n != 0 {
		t.Errorf("the token endpoint got %d requests; want none", n)
	}
}
