package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/proxyauth/proxyauth/internal/sandbox"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// recorder is an upstream that records what it got and answers 200.
type recorder struct {
	*httptest.Server
	mu  sync.Mutex
	got []recorded
}

type recorded struct {
	host, path, rawPath, rawQuery, body string
	header                              http.Header
	contentLength                       int64
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.got = append(rec.got, recorded{r.Host, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, string(b), r.Header.Clone(), r.ContentLength})
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

// TestServeForwards checks the header and URL rules: the path joined to
// the upstream's, the query as the client sent it, the upstream's Host, the
// token in place of the client's Authorization, and the client's api-key
// and x-api-key gone, and Expect for a body already read, while other
// headers and the body pass.
func TestServeForwards(t *testing.T) {
	idp := newIdP(t)
	rec := newRecorder(t)
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", rec.URL+"/llm")

	const query = "api-version=2024-10-21&odd=%3b;x&empty="
	const body = `{"model":"gpt-4o-mini","messages":[]}`
	h := http.Header{
		"Authorization": {"Bearer sk-client-key"},
		"Api-Key":       {"azure-client-key"},
		"X-Api-Key":     {"anthropic-client-key"},
		"X-Custom":      {"kept"},
		"Content-Type":  {"application/json"},
		"Expect":        {"100-continue"},
	}
	resp, got := s.do(t, http.MethodPost, "/v1/chat/completions?"+query, h, body)
	if resp.StatusCode != http.StatusOK || got != `{"ok":true}` {
		t.Fatalf("status %d, body %q; want the upstream's 200", resp.StatusCode, got)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("the upstream got %d requests; want 1", len(reqs))
	}
	r := reqs[0]
	u, _ := url.Parse(rec.URL)
	if r.host != u.Host || r.path != "/llm/v1/chat/completions" || r.rawQuery != query || r.body != body {
		t.Errorf("upstream got Host %q, path %q, query %q, body %q; want %q, %q, %q, %q",
			r.host, r.path, r.rawQuery, r.body, u.Host, "/llm/v1/chat/completions", query, body)
	}
	auth := r.header.Values("Authorization")
	tok, ok := strings.CutPrefix(strings.Join(auth, ","), "Bearer ")
	if len(auth) != 1 || !ok || !idp.Valid(tok) {
		t.Errorf("upstream got Authorization %q; want one bearer token the token endpoint issued", auth)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			if strings.Contains(v, "client-key") {
				t.Errorf("upstream got the client's key in %s: %q", k, v)
			}
		}
	}
	if r.header.Get("X-Custom") != "kept" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("upstream headers %v; want X-Custom and Content-Type kept", r.header)
	}
	// The gateway read the body for replay and so answered the client's
	// Expect itself: the upstream gets the body at once.
	if e := r.header.Values("Expect"); len(e) != 0 {
		t.Errorf("upstream got Expect %q; want none for a body read for replay", e)
	}

	// Hop-by-hop headers, those the client's Connection names, and the
	// forwarding headers that could name local addresses stay here.
	from := len(rec.requests())
	s.raw(t, "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:"+s.port+"\r\nConnection: keep-alive, X-Hop\r\nX-Hop: hop\r\n"+
		"Keep-Alive: timeout=5\r\nForwarded: for=192.0.2.1\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Host: local\r\n"+
		"X-Forwarded-Proto: http\r\nX-Kept: kept\r\n\r\n")
	hdr := rec.requests()[from].header
	for _, h := range []string{"X-Hop", "Keep-Alive", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v := hdr.Values(h); len(v) != 0 {
			t.Errorf("upstream got %s %q; want none", h, v)
		}
	}
	if hdr.Get("X-Kept") != "kept" {
		t.Errorf("upstream headers %v; want X-Kept", hdr)
	}

	// A path with escapes and an upstream without a path.
	s2 := startServe(t, &command{}, sandboxEnv(idp), "--upstream", rec.URL)
	s2.do(t, http.MethodGet, "/v1/files/a%2Fb/content", nil, "")
	if r := rec.requests()[from+1]; r.path != "/v1/files/a/b/content" || r.rawPath != "/v1/files/a%2Fb/content" || r.rawQuery != "" {
		t.Errorf("upstream got path %q (raw %q), query %q; want /v1/files/a/b/content (raw /v1/files/a%%2Fb/content)", r.path, r.rawPath, r.rawQuery)
	}
}

// chatBody is a chat completion request; stream asks for server-sent
// events. pad makes it longer.
func chatBody(stream bool, pad int) string {
	return fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%v,"messages":[{"role":"user","content":"ping%s"}]}`, stream, strings.Repeat(".", pad))
}

// readStream reads a chat completion stream as a client does, calling each
// with every chunk's content as it arrives. It reports whether the stream
// ended with [DONE].
func readStream(body io.Reader, each func(content string)) (contents []string, done bool, err error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return contents, true, sc.Err()
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil || len(chunk.Choices) != 1 {
			return contents, false, fmt.Errorf("chunk %q: %v", data, err)
		}
		contents = append(contents, chunk.Choices[0].Delta.Content)
		if each != nil {
			each(chunk.Choices[0].Delta.Content)
		}
	}
	return contents, false, sc.Err()
}

// TestServeStreamsEachEvent checks that a chunk of a streamed answer
// reaches the client while the upstream holds the next one back: the
// upstream writes chunk i+1 only after the client has read chunk i.
func TestServeStreamsEachEvent(t *testing.T) {
	const chunks = 5
	idp := newIdP(t)
	read := make([]chan struct{}, chunks)
	for i := range read {
		read[i] = make(chan struct{})
	}
	var mu sync.Mutex
	var held []string
	llm := newLLM(t, idp, sandbox.ProxyConfig{StreamChunks: chunks, BeforeChunk: func(r *http.Request, i int) {
		if i == 0 {
			return
		}
		select {
		case <-read[i-1]:
		case <-r.Context().Done():
		case <-t.Context().Done():
		}
		if r.Context().Err() != nil {
			mu.Lock()
			held = append(held, fmt.Sprintf("chunk %d: the request ended while the client waited for chunk %d", i, i-1))
			mu.Unlock()
		}
	}})
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", llm.URL)

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/chat/completions", strings.NewReader(chatBody(true, 0)))
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	type out struct {
		contents []string
		done     bool
		err      error
	}
	res := make(chan out, 1)
	go func() {
		c, d, err := readStream(resp.Body, func(string) { close(read[n]); n++ })
		res <- out{c, d, err}
	}()
	o := testutil.Recv(t, res, "the stream to end (a chunk that is not flushed holds the next one back for ever)")
	if want := []string{"chunk-0 ", "chunk-1 ", "chunk-2 ", "chunk-3 ", "chunk-4 "}; strings.Join(o.contents, "|") != strings.Join(want, "|") || !o.done || o.err != nil {
		t.Errorf("stream %q, done %v, err %v; want %q and [DONE]", o.contents, o.done, o.err, want)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("Content-Type %q; want text/event-stream", resp.Header.Get("Content-Type"))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range held {
		t.Error(h)
	}
}

// TestServeManyStreamedPOSTs sends 600 streamed POSTs in a row, with bodies
// read for replay and with bodies that stream through, sized and framed
// both ways, and checks that every answer arrives whole and no connection
// is left in a state that spoils the next request. The Go client sends its
// body before it reads the answer, so this does not exercise full duplex:
// TestServeFullDuplex does, and the interop test's 600 POSTs from the Node
// SDK, which cut some streams without it.
func TestServeManyStreamedPOSTs(t *testing.T) {
	idp := newIdP(t)
	llm := newLLM(t, idp, sandbox.ProxyConfig{StreamChunks: 4, DiscardSeen: true})
	for _, replay := range []string{"16MiB", "0"} {
		t.Run("max-replay-body="+replay, func(t *testing.T) {
			s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", llm.URL, "--max-replay-body", replay, "--log-level", "warn")
			var bad []string
			for i := range 600 {
				var body io.Reader = strings.NewReader(chatBody(true, i%7*100))
				if i%2 == 1 {
					// A body of unknown length goes out chunked, after
					// the headers.
					body = struct{ io.Reader }{body}
				}
				req, _ := http.NewRequest(http.MethodPost, s.url+"/chat/completions", body)
				resp, err := s.client.Do(req)
				if err != nil {
					bad = append(bad, fmt.Sprintf("request %d: %v", i, err))
					continue
				}
				c, done, err := readStream(resp.Body, nil)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || len(c) != 4 || !done || err != nil {
					bad = append(bad, fmt.Sprintf("request %d: status %d, %d chunks, done %v, %v", i, resp.StatusCode, len(c), done, err))
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d of 600 streams were not whole; the first: %s", len(bad), strings.Join(bad[:min(len(bad), 5)], "; "))
			}
		})
	}
}

// TestServeFullDuplex checks that a request body longer than
// --max-replay-body keeps streaming to the upstream while the answer
// streams back: the client writes line i+1 of its body only after it has
// read the upstream's echo of line i. An HTTP/1 server that is not in
// full-duplex mode reads and throws away the rest of the body once the
// answer starts (golang/go#40747): the echo of the first line would be the
// last.
func TestServeFullDuplex(t *testing.T) {
	idp := newIdP(t)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "text/event-stream")
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			fmt.Fprintf(w, "data: %s\n\n", sc.Text())
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer echo.Close()
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", echo.URL, "--max-replay-body", "16")

	pr, pw := io.Pipe()
	defer pw.Close()
	type answer struct {
		resp *http.Response
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/echo", pr)
		resp, err := s.client.Do(req)
		answers <- answer{resp, err}
	}()
	lines := []string{"line-0, longer than the replay limit", "line-1", "line-2"}
	if _, err := io.WriteString(pw, lines[0]+"\n"); err != nil {
		t.Fatal(err)
	}
	a := testutil.Recv(t, answers, "the answer's headers")
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.resp.Body.Close()
	events := make(chan string)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(a.resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
	}()
	var got []string
	for i := range lines {
		e := testutil.Recv(t, events, fmt.Sprintf("the echo of line %d", i))
		if e == "" {
			break // the answer ended
		}
		got = append(got, e)
		if i+1 < len(lines) {
			// A server that discards the rest of the body blocks here or
			// in the read above; the write is bounded by the hang timer.
			werr := make(chan error, 1)
			go func() { _, err := io.WriteString(pw, lines[i+1]+"\n"); werr <- err }()
			if err := testutil.Recv(t, werr, fmt.Sprintf("the gateway to read line %d of the body", i+1)); err != nil {
				t.Fatalf("writing line %d: %v", i+1, err)
			}
		}
	}
	pw.Close()
	for e := range events {
		got = append(got, e)
	}
	if want := append(lines, "[DONE]"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("echoed %q; want %q", got, want)
	}
}

// TestServeHealsRevokedToken checks the replay rule: a POST whose body is
// at most --max-replay-body long and that the upstream refuses with 401,
// because the token was revoked, is resent with a new token, body and all;
// a longer one gets the 401 as it came, and the request after it a new
// token.
func TestServeHealsRevokedToken(t *testing.T) {
	idp := newIdP(t)
	llm := newLLM(t, idp, sandbox.ProxyConfig{})
	s := startServe(t, &command{}, sandboxEnv(idp), "--upstream", llm.URL, "--max-replay-body", "1KiB")

	post := func(id string, pad int) (int, string) {
		resp, body := s.do(t, http.MethodPost, "/chat/completions", http.Header{"X-Request-Id": {id}}, chatBody(false, pad))
		return resp.StatusCode, body
	}
	if code, body := post("first", 0); code != http.StatusOK {
		t.Fatalf("first POST: %d %s", code, body)
	}

	idp.RevokeAll()
	if n := len(chatBody(false, 900)); n > 1024 || n < 900 {
		t.Fatalf("the body to heal has %d bytes; want just under 1 KiB", n)
	}
	if code, body := post("healed", 900); code != http.StatusOK || !strings.Contains(body, "pong") {
		t.Errorf("a POST of almost 1 KiB after the token was revoked: %d %s; want the answer", code, body)
	}
	var statuses []int
	for _, sn := range llm.Seen() {
		if sn.RequestID == "healed" {
			statuses = append(statuses, sn.Status)
		}
	}
	if fmt.Sprint(statuses) != "[401 200]" {
		t.Errorf("the upstream answered the healed POST with %v; want [401 200]: one refusal, one resend with its body", statuses)
	}

	idp.RevokeAll()
	if code, body := post("too-long", 1100); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("a POST longer than the replay limit after a revocation: %d %s; want the upstream's 401 as it came", code, body)
	}
	if code, body := post("next", 1100); code != http.StatusOK {
		t.Errorf("the POST after the refused one: %d %s; want 200 with a new token", code, body)
	}
	if n := idp.Issued(); n != 3 {
		t.Errorf("tokens issued %d; want 3: the first, one after each revocation", n)
	}
	_, metrics := s.do(t, http.MethodGet, "/metrics", nil, "")
	if !strings.Contains(metrics, "\nproxyauth_retries_total 1\n") {
		t.Errorf("metrics do not count one resend:\n%s", metrics)
	}
}

// TestReplayBufferGrowsWithTheBody checks that a declared Content-Length
// reserves no more than a small buffer before the bytes arrive: a client
// that announces 16 MiB and sends a few bytes must not make the gateway
// hold 16 MiB.
func TestReplayBufferGrowsWithTheBody(t *testing.T) {
	g := &gateway{maxReplay: 16 << 20, bodyTimeout: time.Minute}
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", io.MultiReader(strings.NewReader(`{"model":`), iotest.ErrReader(io.ErrUnexpectedEOF)))
	r.ContentLength = 16 << 20
	rc := http.NewResponseController(httptest.NewRecorder())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := g.replayable(rc, r)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("replayable: %v; want the body's error", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("reading 9 bytes of a body that announced 16 MiB allocated %d bytes; want at most 1 MiB", n)
	}
}
