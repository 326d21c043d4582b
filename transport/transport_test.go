package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/testcred"
)

// upstream is a fake base transport. It answers 401 to the tokens in
// reject and 200 to the rest, reads and closes request bodies as a real
// transport does, and records what it was sent.
type upstream struct {
	mu     sync.Mutex
	reject map[string]bool // "Bearer x" -> answer 401
	sent   []sent
}

type sent struct {
	req  *http.Request
	auth string
	body string
}

func (u *upstream) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	auth := r.Header.Get("Authorization")
	u.mu.Lock()
	u.sent = append(u.sent, sent{req: r, auth: auth, body: string(body)})
	rejected := u.reject[auth]
	u.mu.Unlock()
	status := http.StatusOK
	if rejected {
		status = http.StatusUnauthorized
	}
	return testutil.Response(r, status, "ok"), nil
}

func (u *upstream) sends() []sent {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]sent(nil), u.sent...)
}

// tokens returns the tokens the sends carried, in order, as "[tok-1 tok-2]".
func (u *upstream) tokens() string {
	var toks []string
	for _, s := range u.sends() {
		toks = append(toks, strings.TrimPrefix(s.auth, "Bearer "))
	}
	return fmt.Sprint(toks)
}

func (u *upstream) rejectToken(tok string) {
	u.mu.Lock()
	if u.reject == nil {
		u.reject = map[string]bool{}
	}
	u.reject["Bearer "+tok] = true
	u.mu.Unlock()
}

// recordingBody counts the bytes read from it and its Close calls.
type recordingBody struct {
	io.Reader
	read, closed atomic.Int64
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *recordingBody) Close() error { b.closed.Add(1); return nil }

// noJitter is a random source for the cache that always gives 0: refresh
// points and backoff steps are then the rules' own, not moved by jitter.
func noJitter() float64 { return 0 }

// get sends a GET to u through rt from the test's goroutine.
func get(t *testing.T, rt http.RoundTripper, u string) {
	t.Helper()
	mustSend(t, rt, httpGet(u))
}

// 1. 1000 goroutines through a cold transport cause one credential call and
// all carry the same token. The credential does not answer until every
// goroutine has started, so most of them wait for the one fetch.
func TestColdStartOneFetch(t *testing.T) {
	const n = 1000
	const url = "https://llm.example.com/v1/models"
	cred, open := testcred.Gated(t)
	mt := httpmock.NewMockTransport()
	mt.RegisterMatcherResponder(http.MethodGet, url, byToken("tok-1"), httpmock.NewStringResponder(http.StatusOK, "ok"))
	tr := New(cred, "api://proxy/.default", &Options{Base: mt})

	var started atomic.Int64
	statuses, errs := make([]int, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			started.Add(1)
			statuses[i], _, errs[i] = send(tr, httpGet(url))
		})
	}
	testutil.Eventually(t, "every request to start and the first fetch to begin", func() bool {
		return started.Load() == n && cred.Calls() > 0
	})
	open()
	testutil.Wait(t, &wg, "1000 requests to end")

	for i := range n {
		if errs[i] != nil || statuses[i] != http.StatusOK {
			t.Fatalf("request %d: %d, %v; want 200 with tok-1", i, statuses[i], errs[i])
		}
	}
	if c, s := cred.Calls(), sendsOf(mt, http.MethodGet, url, "tok-1"); c != 1 || s != n {
		t.Fatalf("credential calls %d, sends with tok-1 %d; want 1, %d", c, s, n)
	}
	if st := tr.Stats(); st != (Stats{Fetches: 1}) {
		t.Fatalf("Stats = %+v; want {Fetches:1}", st)
	}
}

// 2. A request in the refresh window goes out with the old token while the
// background refresh is blocked in the credential; the next request after
// it carries the new token.
func TestRefreshWindowThroughTransport(t *testing.T) {
	clk := testutil.NewClock()
	entered, releaseCh := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(releaseCh) })
	t.Cleanup(release)
	var calls atomic.Int64
	cred := credential.Func(func(ctx context.Context, _ string) (credential.AccessToken, error) {
		n := calls.Add(1)
		if n == 2 {
			close(entered)
			select {
			case <-releaseCh:
			case <-ctx.Done():
				return credential.AccessToken{}, ctx.Err()
			}
		}
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(10 * time.Minute)}, nil
	})
	up := &upstream{}
	tr := newTransport(cred, "s", &Options{Base: up}, clk.Now, noJitter)
	get(t, tr, "https://llm.example.com/")
	clk.Advance(6 * time.Minute) // refresh point: 10 min - 5 min

	get(t, tr, "https://llm.example.com/")
	testutil.Recv(t, entered, "the background refresh to call the credential")
	get(t, tr, "https://llm.example.com/")
	release()
	testutil.Eventually(t, "the new token", func() bool {
		tok, err := tr.Token(context.Background())
		return err == nil && tok.Token == "tok-2"
	})
	get(t, tr, "https://llm.example.com/")

	if got, want := up.tokens(), "[tok-1 tok-1 tok-1 tok-2]"; got != want {
		t.Fatalf("tokens sent %s; want %s", got, want)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("credential calls = %d; want 2", n)
	}
}

// 3 and 4 through the transport: a failed refresh keeps the old token; with
// no usable token the error names the cause and the next try, and nothing
// is sent.
func TestFailuresThroughTransport(t *testing.T) {
	clk := testutil.NewClock()
	boom := errors.New("AADSTS7000215: invalid client secret")
	var calls atomic.Int64
	cred := credential.Func(func(ctx context.Context, _ string) (credential.AccessToken, error) {
		if calls.Add(1) == 1 {
			return credential.AccessToken{Token: "tok-1", ExpiresOn: clk.Now().Add(10 * time.Minute)}, nil
		}
		return credential.AccessToken{}, boom
	})
	up := &upstream{}
	tr := newTransport(cred, "s", &Options{Base: up}, clk.Now, noJitter)
	get(t, tr, "https://llm.example.com/")
	clk.Advance(6 * time.Minute)
	get(t, tr, "https://llm.example.com/")
	testutil.Eventually(t, "the failed refresh", func() bool { return tr.Stats().FetchErrors == 1 })
	get(t, tr, "https://llm.example.com/")
	if n := calls.Load(); n != 2 {
		t.Fatalf("credential calls within the backoff = %d; want 2", n)
	}

	clk.Advance(10 * time.Minute) // the token is unusable now
	_, errs := concurrently(t, 1000, tr, func() *http.Request { return httpGet("https://llm.example.com/") })
	if n := calls.Load(); n != 3 {
		t.Fatalf("credential calls = %d; want 3", n)
	}
	for _, err := range errs {
		var fe *FetchError
		if !errors.Is(err, boom) || !errors.As(err, &fe) || !fe.NextTry.After(clk.Now()) {
			t.Fatalf("err = %v; want a FetchError with the cause and the next try", err)
		}
	}
	if n := len(up.sends()); n != 3 {
		t.Fatalf("upstream got %d requests; want 3 (none without a token)", n)
	}
	if st := tr.Stats(); st.Fetches != 3 || st.FetchErrors != 2 {
		t.Fatalf("Stats = %+v; want 3 fetches, 2 errors", st)
	}
}

// 9. Redirects keep the token only on the same host or a subdomain of it.
func TestRedirects(t *testing.T) {
	tests := []struct {
		chain    []string // where https://llm.example.com/v1 redirects to, hop by hop
		wantAuth bool     // on the last hop
	}{
		{[]string{"https://llm.example.com/v2"}, true},
		{[]string{"https://llm.example.com:8443/v2"}, true},
		{[]string{"https://eu.llm.example.com/v2"}, true},
		{[]string{"https://LLM.Example.com/v2"}, true},
		{[]string{"https://example.com/v2"}, false},
		{[]string{"https://evil.com/v2"}, false},
		{[]string{"https://llm.example.com.evil.com/v2"}, false},
		{[]string{"https://xllm.example.com/v2"}, false},
		// Once a chain has left the host, no later hop gets the token,
		// even one back on the original host.
		{[]string{"https://evil.example.net/x", "https://llm.example.com/v2"}, false},
		{[]string{"https://eu.llm.example.com/x", "https://llm.example.com/v2"}, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.chain, " "), func(t *testing.T) {
			mt := httpmock.NewMockTransport()
			from := "https://llm.example.com/v1"
			for _, to := range tt.chain {
				mt.RegisterResponder(http.MethodGet, from,
					httpmock.NewStringResponder(http.StatusTemporaryRedirect, "").HeaderSet(http.Header{"Location": {to}}))
				from = to
			}
			last := tt.chain[len(tt.chain)-1]
			mt.RegisterMatcherResponder(http.MethodGet, last,
				httpmock.HeaderIs("Authorization", "Bearer secret-token").WithName("token"), httpmock.NewStringResponder(http.StatusOK, "token"))
			mt.RegisterMatcherResponder(http.MethodGet, last,
				httpmock.NewMatcher("none", func(r *http.Request) bool { return len(r.Header.Values("Authorization")) == 0 }),
				httpmock.NewStringResponder(http.StatusOK, "none"))
			client := Wrap(&http.Client{Transport: mt}, credential.Static("secret-token"), "s", nil)
			resp, err := client.Get("https://llm.example.com/v1")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := map[bool]string{true: "token", false: "none"}[tt.wantAuth]
			if string(got) != want || mt.GetTotalCallCount() != len(tt.chain)+1 {
				t.Fatalf("last hop carried %s after %d sends; want %s after %d", got, mt.GetTotalCallCount(), want, len(tt.chain)+1)
			}
		})
	}
}

// A redirect from https to plain http on the same host would carry the
// token in clear text: refused.
func TestRedirectToPlainHTTPRefused(t *testing.T) {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, "https://llm.example.com/v1",
		httpmock.NewStringResponder(http.StatusFound, "").HeaderSet(http.Header{"Location": {"http://llm.example.com/v2"}}))
	client := Wrap(&http.Client{Transport: mt}, credential.Static("t"), "s", nil)
	_, err := client.Get("https://llm.example.com/v1")
	if n := mt.GetTotalCallCount(); !errors.Is(err, ErrInsecureHTTP) || n != 1 {
		t.Fatalf("err = %v after %d sends; want ErrInsecureHTTP after 1", err, n)
	}
}

// 10. The caller's request is never changed and its body is closed on
// every path.
func TestRequestUntouchedAndBodyClosed(t *testing.T) {
	failing := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		return credential.AccessToken{}, errors.New("down")
	})
	netErr := errors.New("connection reset")
	tests := []struct {
		name   string
		url    string
		cred   credential.TokenCredential
		base   func(*upstream) http.RoundTripper
		reject bool
		getErr bool
		noGet  bool
	}{
		{name: "success", url: "https://llm.example.com/v1?x=1"},
		{name: "401 resend", url: "https://llm.example.com/v1", reject: true},
		{name: "401 unreplayable", url: "https://llm.example.com/v1", reject: true, noGet: true},
		{name: "plain http refused", url: "http://llm.example.com/v1", getErr: true},
		{name: "credential error", url: "https://llm.example.com/v1", cred: failing, getErr: true},
		{name: "base error", url: "https://llm.example.com/v1", getErr: true, base: func(*upstream) http.RoundTripper {
			return testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				r.Body.Close()
				return nil, netErr
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstream{}
			if tt.reject {
				up.rejectToken("tok-1")
			}
			var base http.RoundTripper = up
			if tt.base != nil {
				base = tt.base(up)
			}
			cred := tt.cred
			if cred == nil {
				cred = &testcred.Source{}
			}
			tr := New(cred, "s", &Options{Base: base})

			body := &recordingBody{Reader: strings.NewReader("payload")}
			req, _ := http.NewRequest(http.MethodPost, tt.url, body)
			if !tt.noGet {
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("payload")), nil }
			}
			req.Header.Set("Authorization", "Bearer sk-api-key")
			req.Header.Set("X-Trace", "abc")
			wantHeader := req.Header.Clone()
			wantURL := req.URL.String()

			resp, err := tr.RoundTrip(req)
			if (err != nil) != tt.getErr {
				t.Fatalf("err = %v; want error: %v", err, tt.getErr)
			}
			if resp != nil {
				resp.Body.Close()
			}
			if fmt.Sprint(req.Header) != fmt.Sprint(wantHeader) || req.URL.String() != wantURL || req.Body != body {
				t.Fatalf("request changed: header %v url %s", req.Header, req.URL)
			}
			if n := body.closed.Load(); n != 1 {
				t.Fatalf("request body closed %d times; want once", n)
			}
			for _, s := range up.sends() {
				if s.req == req {
					t.Fatal("the caller's request itself was sent")
				}
				if strings.Contains(s.auth, "sk-api-key") {
					t.Fatal("the API key reached the upstream")
				}
			}
		})
	}
}

// 11. Plain http goes only to loopback hosts unless AllowHTTP is set.
func TestPlainHTTP(t *testing.T) {
	tests := []struct {
		url       string
		allowHTTP bool
		wantErr   bool
	}{
		{"http://llm.example.com/", false, true},
		{"http://10.0.0.1:8080/", false, true},
		{"http://localhost.example.com/", false, true},
		{"http://127.0.0.1.nip.io/", false, true},
		{"http://127.0.0.1:4000/", false, false},
		{"http://127.9.8.7/", false, false},
		{"http://[::1]:4000/", false, false},
		{"http://localhost:4000/", false, false},
		{"http://LocalHost/", false, false},
		{"https://llm.example.com/", false, false},
		{"http://llm.example.com/", true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s allow=%v", tt.url, tt.allowHTTP), func(t *testing.T) {
			mt := httpmock.NewMockTransport()
			mt.RegisterResponder(http.MethodGet, tt.url, httpmock.NewStringResponder(http.StatusOK, "ok"))
			tr := New(credential.Static("t"), "s", &Options{Base: mt, AllowHTTP: tt.allowHTTP})
			resp, err := tr.RoundTrip(httpGet(tt.url))
			if tt.wantErr {
				if !errors.Is(err, ErrInsecureHTTP) || resp != nil {
					t.Fatalf("got %v, %v; want ErrInsecureHTTP", resp, err)
				}
				if n := mt.GetTotalCallCount(); n != 0 {
					t.Fatalf("base called %d times; want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if n := mt.GetTotalCallCount(); n != 1 {
				t.Fatalf("base called %d times; want 1", n)
			}
		})
	}
}

// 14. The response body streams: the first SSE event reaches the caller
// before the server writes the second.
func TestStreaming(t *testing.T) {
	firstRead := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer stream-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-firstRead:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: two\n\n")
	}))
	defer srv.Close()

	client := Wrap(srv.Client(), credential.Static("stream-token"), "s", nil)
	// A transport that buffered the body would wait for the second event,
	// which the server writes only after the client has read the first.
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var events []string
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			events = append(events, line)
			if len(events) == 1 {
				close(firstRead) // the server writes the second event only now
			}
		}
	}
	if fmt.Sprint(events) != "[data: one data: two]" || sc.Err() != nil {
		t.Fatalf("events = %q, error %v; want both events (a hang ends at %v)", events, sc.Err(), testutil.HangTimeout)
	}
}

func TestWrapLeavesClientAlone(t *testing.T) {
	orig := &http.Client{Timeout: 7 * time.Second}
	c := Wrap(orig, credential.Static("t"), "s", &Options{Base: testutil.RoundTripFunc(nil)})
	if orig.Transport != nil {
		t.Fatal("Wrap changed the client's Transport")
	}
	tr, ok := c.Transport.(*Transport)
	if !ok || c.Timeout != 7*time.Second {
		t.Fatalf("Wrap = %+v; want a copy with a *Transport", c)
	}
	if tr.base != http.DefaultTransport {
		t.Fatal("Wrap used Options.Base instead of the client's transport")
	}
	if c := Wrap(nil, credential.Static("t"), "s", nil); c.Transport == nil {
		t.Fatal("Wrap(nil) has no transport")
	}
}

func TestAuthHeadersIsFresh(t *testing.T) {
	tr := New(credential.Static("abc"), "s", nil)
	h1, err := tr.AuthHeaders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h1.Set("Authorization", "changed")
	h2, _ := tr.AuthHeaders(context.Background())
	if got := h2.Get("Authorization"); got != "Bearer abc" {
		t.Fatalf("Authorization = %q; want Bearer abc", got)
	}
}

// The caller's ctx ends its own wait for a token.
func TestRoundTripHonoursContext(t *testing.T) {
	cred, _ := testcred.Gated(t)
	tr := New(cred, "s", &Options{Base: &upstream{}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://llm.example.com/", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
		}
		done <- err
	}()
	testutil.Eventually(t, "the fetch to start", func() bool { return cred.Calls() == 1 })
	cancel()
	if err := testutil.Recv(t, done, "RoundTrip to return once its context was cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
}

func TestNilURL(t *testing.T) {
	up := &upstream{}
	tr := New(credential.Static("t"), "s", &Options{Base: up})
	body := &recordingBody{Reader: strings.NewReader("x")}
	resp, err := tr.RoundTrip(&http.Request{Method: http.MethodPost, Body: body, Header: http.Header{}})
	if err == nil || resp != nil || body.closed.Load() != 1 || len(up.sends()) != 0 {
		t.Fatalf("got %v, %v, body closed %d times; want an error, the body closed, nothing sent", resp, err, body.closed.Load())
	}
}

// Options.RefreshBefore reaches the cache: a token that expires in an hour
// with RefreshBefore 2 minutes is used as it is until 58 minutes after its
// fetch, and the first request at that point starts one background
// refresh (the default of 5 minutes would start it 3 minutes earlier).
func TestRefreshBeforeOption(t *testing.T) {
	const refreshBefore = 2 * time.Minute
	const url = "https://llm.example.com/v1/models"
	clk := testutil.NewClock()
	src := &testcred.Source{Now: clk.Now}
	logs, logger := testutil.NewLogs()
	mt := httpmock.NewMockTransport()
	for _, tok := range []string{"tok-1", "tok-2"} {
		mt.RegisterMatcherResponder(http.MethodGet, url, byToken(tok), httpmock.NewStringResponder(http.StatusOK, "ok"))
	}
	tr := newTransport(src, "s", &Options{Base: mt, RefreshBefore: refreshBefore, Logger: logger}, clk.Now, noJitter)
	refreshAt := clk.Now().Add(time.Hour - refreshBefore) // src: an hour from the fetch
	get(t, tr, url)

	clk.Set(refreshAt.Add(-time.Nanosecond))
	get(t, tr, url)
	// The cache decides on the caller's goroutine whether to refresh, and
	// says so before it starts the fetch.
	if n := len(logs.Events("refresh_started")); n != 0 || src.Calls() != 1 {
		t.Fatalf("1ns before the refresh point: %d refreshes started, %d credential calls; want 0, 1", n, src.Calls())
	}
	clk.Set(refreshAt)
	get(t, tr, url)
	if n := len(logs.Events("refresh_started")); n != 1 {
		t.Fatalf("at the refresh point: %d refreshes started; want 1", n)
	}
	testutil.Eventually(t, "the background refresh to cache tok-2", func() bool {
		tok, err := tr.Token(context.Background())
		return err == nil && tok.Token == "tok-2"
	})
	get(t, tr, url)
	if s1, s2, c := sendsOf(mt, http.MethodGet, url, "tok-1"), sendsOf(mt, http.MethodGet, url, "tok-2"), src.Calls(); s1 != 3 || s2 != 1 || c != 2 {
		t.Fatalf("sends with tok-1 %d, with tok-2 %d, credential calls %d; want 3, 1, 2", s1, s2, c)
	}
}

// Options.FetchTimeout reaches the cache: the credential's context ends
// FetchTimeout after the fetch began, and a credential that ignores its
// context is cut off there, its late token still cached.
func TestFetchTimeoutOption(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		// Longer than the default, so that a transport that dropped the
		// option would hand the credential an earlier deadline.
		const timeout = 2 * time.Minute
		var deadline time.Time
		var ok bool
		cred := credential.Func(func(ctx context.Context, _ string) (credential.AccessToken, error) {
			deadline, ok = ctx.Deadline()
			return credential.AccessToken{Token: "tok"}, nil
		})
		tr := New(cred, "s", &Options{FetchTimeout: timeout})
		before := time.Now()
		if _, err := tr.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		if !ok || deadline.Before(before.Add(timeout)) || deadline.After(after.Add(timeout)) {
			t.Fatalf("the credential's context ends %v after the fetch began (set: %v); want FetchTimeout, %v", deadline.Sub(before), ok, timeout)
		}
	})
	t.Run("credential ignoring its context", func(t *testing.T) {
		// On a fake clock that stands still, the backoff after the
		// timeout never ends, so no second call can start however late
		// the test gets to release the first.
		clk := testutil.NewClock()
		entered := make(chan struct{})
		releaseCh := make(chan struct{})
		release := sync.OnceFunc(func() { close(releaseCh) })
		t.Cleanup(release)
		var calls atomic.Int64
		cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
			calls.Add(1)
			close(entered)
			<-releaseCh // until the test has seen the timeout, whatever ctx says
			return credential.AccessToken{Token: "late", ExpiresOn: clk.Now().Add(time.Hour)}, nil
		})
		mt := httpmock.NewMockTransport()
		tr := newTransport(cred, "s", &Options{Base: mt, FetchTimeout: time.Millisecond}, clk.Now, noJitter)
		done := make(chan error, 1)
		go func() {
			_, _, err := send(tr, httpGet("https://llm.example.com/"))
			done <- err
		}()
		testutil.Recv(t, entered, "the credential call")
		err := testutil.Recv(t, done, "RoundTrip to give up at the fetch timeout")
		if !errors.Is(err, context.DeadlineExceeded) || mt.GetTotalCallCount() != 0 {
			t.Fatalf("err = %v after %d sends; want context.DeadlineExceeded, nothing sent", err, mt.GetTotalCallCount())
		}
		release()
		testutil.Eventually(t, "the late token to be cached", func() bool {
			tok, err := tr.Token(context.Background())
			return err == nil && tok.Token == "late"
		})
		if n := calls.Load(); n != 1 {
			t.Fatalf("credential calls = %d; want 1", n)
		}
	})
}
