package transport

import (
	"bufio"
	"bytes"
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

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

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
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("ok")), Header: http.Header{}, Request: r}, nil
}

func (u *upstream) sends() []sent {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]sent(nil), u.sent...)
}

func (u *upstream) rejectToken(tok string) {
	u.mu.Lock()
	if u.reject == nil {
		u.reject = map[string]bool{}
	}
	u.reject["Bearer "+tok] = true
	u.mu.Unlock()
}

// counter is a credential that hands out tok-1, tok-2, ... valid for an hour.
type counter struct {
	calls atomic.Int64
	gate  chan struct{} // if not nil, each call waits for it to close
}

func (c *counter) GetToken(ctx context.Context, _ string) (credential.AccessToken, error) {
	n := c.calls.Add(1)
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return credential.AccessToken{}, ctx.Err()
		}
	}
	return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// recordingBody records whether it was closed.
type recordingBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *recordingBody) Close() error { b.closed.Add(1); return nil }

func get(t *testing.T, rt http.RoundTripper, u string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, u, nil)
	req.RequestURI = ""
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip(%s): %v", u, err)
	}
	resp.Body.Close()
	return resp
}

// 1. 1000 goroutines through a cold transport cause one credential call and
// all carry the same token.
func TestColdStartOneFetch(t *testing.T) {
	cred := &counter{gate: make(chan struct{})}
	up := &upstream{}
	tr := New(cred, "api://proxy/.default", &Options{Base: up})

	var wg sync.WaitGroup
	for range 1000 {
		wg.Go(func() { get(t, tr, "https://llm.example.com/v1/models") })
	}
	testutil.Eventually(t, "the first fetch to start", func() bool { return cred.calls.Load() > 0 })
	close(cred.gate)
	wg.Wait()

	if n := cred.calls.Load(); n != 1 {
		t.Fatalf("credential calls = %d; want 1", n)
	}
	s := up.sends()
	if len(s) != 1000 {
		t.Fatalf("upstream got %d requests; want 1000", len(s))
	}
	for _, r := range s {
		if r.auth != "Bearer tok-1" {
			t.Fatalf("Authorization = %q; want Bearer tok-1", r.auth)
		}
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
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	cred := credential.Func(func(ctx context.Context, _ string) (credential.AccessToken, error) {
		n := calls.Add(1)
		if n == 2 {
			close(entered)
			<-release
		}
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(10 * time.Minute)}, nil
	})
	up := &upstream{}
	tr := newTransport(cred, "s", &Options{Base: up}, clk.Now)
	get(t, tr, "https://llm.example.com/")
	clk.Advance(6 * time.Minute) // refresh point: 10 min - 5 min

	get(t, tr, "https://llm.example.com/")
	<-entered
	get(t, tr, "https://llm.example.com/")
	close(release)
	testutil.Eventually(t, "the new token", func() bool {
		tok, err := tr.Token(context.Background())
		return err == nil && tok.Token == "tok-2"
	})
	get(t, tr, "https://llm.example.com/")

	var auths []string
	for _, s := range up.sends() {
		auths = append(auths, s.auth)
	}
	want := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"}
	if fmt.Sprint(auths) != fmt.Sprint(want) {
		t.Fatalf("tokens sent = %q; want %q", auths, want)
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
	tr := newTransport(cred, "s", &Options{Base: up}, clk.Now)
	get(t, tr, "https://llm.example.com/")
	clk.Advance(6 * time.Minute)
	get(t, tr, "https://llm.example.com/")
	testutil.Eventually(t, "the failed refresh", func() bool { return tr.Stats().FetchErrors == 1 })
	get(t, tr, "https://llm.example.com/")
	if n := calls.Load(); n != 2 {
		t.Fatalf("credential calls within the backoff = %d; want 2", n)
	}

	clk.Advance(10 * time.Minute) // the token is unusable now
	var wg sync.WaitGroup
	errs := make([]error, 1000)
	for i := range errs {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "https://llm.example.com/", nil)
			_, errs[i] = tr.RoundTrip(req)
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 3 {
		t.Fatalf("credential calls = %d; want 3", n)
	}
	for _, err := range errs {
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "next try in") {
			t.Fatalf("err = %v; want the cause and the next try", err)
		}
	}
	if n := len(up.sends()); n != 3 {
		t.Fatalf("upstream got %d requests; want 3 (none without a token)", n)
	}
	if st := tr.Stats(); st.Fetches != 3 || st.FetchErrors != 2 {
		t.Fatalf("Stats = %+v; want 3 fetches, 2 errors", st)
	}
}

// 6. A 401 is healed by exactly one resend with the identical body and a new
// token; a second 401 goes back to the caller.
func TestRetryOn401(t *testing.T) {
	payload := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	bodies := []struct {
		name string
		make func() (*http.Request, error)
	}{
		{"bytes.Reader", func() (*http.Request, error) {
			return http.NewRequest(http.MethodPost, "https://llm.example.com/v1/chat/completions", bytes.NewReader([]byte(payload)))
		}},
		{"strings.Reader", func() (*http.Request, error) {
			return http.NewRequest(http.MethodPost, "https://llm.example.com/v1/chat/completions", strings.NewReader(payload))
		}},
		{"explicit GetBody", func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPost, "https://llm.example.com/v1/chat/completions", nil)
			if err != nil {
				return nil, err
			}
			req.Body = io.NopCloser(bufio.NewReader(strings.NewReader(payload)))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(payload)), nil }
			return req, nil
		}},
		{"no body", func() (*http.Request, error) {
			return http.NewRequest(http.MethodGet, "https://llm.example.com/v1/models", nil)
		}},
		{"http.NoBody", func() (*http.Request, error) {
			return http.NewRequest(http.MethodPost, "https://llm.example.com/v1/models", http.NoBody)
		}},
	}
	for _, b := range bodies {
		t.Run(b.name, func(t *testing.T) {
			up := &upstream{}
			up.rejectToken("tok-1")
			cred := &counter{}
			var drained, closed atomic.Int64
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := up.RoundTrip(r)
				if resp.StatusCode == http.StatusUnauthorized {
					big := strings.NewReader(strings.Repeat("x", 1<<20))
					resp.Body = &countingBody{r: big, read: &drained, closed: &closed}
				}
				return resp, err
			})
			tr := New(cred, "s", &Options{Base: base})
			req, err := b.make()
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d; want 200", resp.StatusCode)
			}
			s := up.sends()
			if len(s) != 2 || s[0].auth != "Bearer tok-1" || s[1].auth != "Bearer tok-2" {
				t.Fatalf("sends = %d, want 2: the first with tok-1, the resend with tok-2", len(s))
			}
			wantBody := payload
			if req.Body == nil || req.Body == http.NoBody {
				wantBody = ""
			}
			if s[0].body != wantBody || s[1].body != wantBody {
				t.Fatalf("bodies = %q, %q; want %q twice", s[0].body, s[1].body, wantBody)
			}
			if closed.Load() != 1 || drained.Load() == 0 || drained.Load() > maxDrain {
				t.Fatalf("401 body: closed %d times, drained %d bytes; want closed once after at most %d bytes", closed.Load(), drained.Load(), maxDrain)
			}
			if st := tr.Stats(); st.Retries != 1 || st.Fetches != 2 {
				t.Fatalf("Stats = %+v; want 1 retry, 2 fetches", st)
			}

			// Every token rejected: one resend, then the 401 as it is.
			up.rejectToken("tok-2")
			up.rejectToken("tok-3")
			req, _ = b.make()
			resp, err = tr.RoundTrip(req)
			if err != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("second 401: got %v, %v; want the 401 with err == nil", resp, err)
			}
			resp.Body.Close()
			if n := len(up.sends()); n != 4 {
				t.Fatalf("upstream got %d requests; want 4 (never a loop)", n)
			}
		})
	}
}

type countingBody struct {
	r            io.Reader
	read, closed *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { b.closed.Add(1); return nil }

// 7. A body that cannot be replayed is never resent; DisableRetry turns
// resending off.
func TestNoRetry(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		req  func() *http.Request
	}{
		{"body without GetBody", Options{}, func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, "https://llm.example.com/", io.NopCloser(strings.NewReader("once")))
			return req
		}},
		{"DisableRetry", Options{DisableRetry: true}, func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, "https://llm.example.com/", strings.NewReader("twice"))
			return req
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstream{}
			up.rejectToken("tok-1")
			cred := &counter{}
			tt.opts.Base = up
			tr := New(cred, "s", &tt.opts)
			req := tt.req()
			resp, err := tr.RoundTrip(req)
			if err != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %v, %v; want the 401", resp, err)
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
				t.Fatalf("401 body = %q; want it untouched", b)
			}
			resp.Body.Close()
			if n := len(up.sends()); n != 1 {
				t.Fatalf("upstream got %d requests; want 1", n)
			}
			if st := tr.Stats(); st.Retries != 0 || st.Fetches != 1 {
				t.Fatalf("Stats = %+v; want no retry, one fetch", st)
			}
		})
	}
}

// 8. 500 concurrent requests rejected with the same token cost at most one
// more credential call and all end 200.
func TestConcurrent401(t *testing.T) {
	up := &upstream{}
	cred := &counter{}
	tr := New(cred, "s", &Options{Base: up})
	get(t, tr, "https://llm.example.com/") // tok-1 cached
	up.rejectToken("tok-1")

	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 500 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, "https://llm.example.com/", strings.NewReader("{}"))
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 500 {
		t.Fatalf("%d of 500 requests ended 200", n)
	}
	if n := cred.calls.Load(); n > 2 {
		t.Fatalf("credential calls = %d; want at most 2", n)
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
			next := map[string]string{"https://llm.example.com/v1": tt.chain[0]}
			for i := 1; i < len(tt.chain); i++ {
				next[tt.chain[i-1]] = tt.chain[i]
			}
			var final string
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if to, ok := next[r.URL.String()]; ok && r.URL.String() != tt.chain[len(tt.chain)-1] {
					h := http.Header{"Location": {to}}
					return &http.Response{StatusCode: http.StatusTemporaryRedirect, Header: h, Body: http.NoBody, Request: r}, nil
				}
				final = r.Header.Get("Authorization")
				return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
			})
			client := Wrap(&http.Client{Transport: base}, credential.Static("secret-token"), "s", nil)
			resp, err := client.Get("https://llm.example.com/v1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := final != ""; got != tt.wantAuth {
				t.Fatalf("Authorization on the last hop: %q; want present=%v", final, tt.wantAuth)
			}
		})
	}
}

// A redirect from https to plain http on the same host would carry the
// token in clear text: refused.
func TestRedirectToPlainHTTPRefused(t *testing.T) {
	var calls atomic.Int64
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		h := http.Header{"Location": {"http://llm.example.com/v2"}}
		return &http.Response{StatusCode: http.StatusFound, Header: h, Body: http.NoBody, Request: r}, nil
	})
	client := Wrap(&http.Client{Transport: base}, credential.Static("t"), "s", nil)
	_, err := client.Get("https://llm.example.com/v1")
	if !errors.Is(err, ErrInsecureHTTP) || calls.Load() != 1 {
		t.Fatalf("err = %v after %d sends; want ErrInsecureHTTP after 1", err, calls.Load())
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
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
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
				cred = &counter{}
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
			up := &upstream{}
			tr := New(credential.Static("t"), "s", &Options{Base: up, AllowHTTP: tt.allowHTTP})
			req, _ := http.NewRequest(http.MethodGet, tt.url, nil)
			resp, err := tr.RoundTrip(req)
			if tt.wantErr {
				if !errors.Is(err, ErrInsecureHTTP) || resp != nil {
					t.Fatalf("got %v, %v; want ErrInsecureHTTP", resp, err)
				}
				if n := len(up.sends()); n != 0 {
					t.Fatalf("base called %d times; want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		})
	}
}

type providerError struct{ code string }

func (e *providerError) Error() string { return "provider: " + e.code }

// 12. A credential error reaches the caller through errors.Is and
// errors.As, and nothing is sent.
func TestCredentialErrorReachesCaller(t *testing.T) {
	sentinel := errors.New("sentinel")
	cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		return credential.AccessToken{}, fmt.Errorf("%w: %w", sentinel, &providerError{code: "invalid_client"})
	})
	up := &upstream{}
	tr := New(cred, "s", &Options{Base: up})
	req, _ := http.NewRequest(http.MethodGet, "https://llm.example.com/", nil)
	_, err := tr.RoundTrip(req)
	var pe *providerError
	if !errors.Is(err, sentinel) || !errors.As(err, &pe) || pe.code != "invalid_client" {
		t.Fatalf("err = %v; want sentinel and *providerError reachable", err)
	}
	if n := len(up.sends()); n != 0 {
		t.Fatalf("base called %d times; want 0", n)
	}
	if _, err := tr.Token(context.Background()); !errors.Is(err, sentinel) {
		t.Fatalf("Token err = %v; want sentinel", err)
	}
	if _, err := tr.AuthHeaders(context.Background()); !errors.Is(err, sentinel) {
		t.Fatalf("AuthHeaders err = %v; want sentinel", err)
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
	resp, err := client.Get(srv.URL)
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
	if fmt.Sprint(events) != "[data: one data: two]" {
		t.Fatalf("events = %q", events)
	}
}

func TestWrapLeavesClientAlone(t *testing.T) {
	orig := &http.Client{Timeout: 7 * time.Second}
	c := Wrap(orig, credential.Static("t"), "s", &Options{Base: roundTripFunc(nil)})
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
	cred := &counter{gate: make(chan struct{})}
	defer close(cred.gate)
	tr := New(cred, "s", &Options{Base: &upstream{}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://llm.example.com/", nil)
	done := make(chan error)
	go func() {
		_, err := tr.RoundTrip(req)
		done <- err
	}()
	testutil.Eventually(t, "the fetch to start", func() bool { return cred.calls.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
}

func TestSameHostOrSubdomain(t *testing.T) {
	tests := []struct {
		host, parent string
		want         bool
	}{
		{"a.com", "a.com", true},
		{"b.a.com", "a.com", true},
		{"A.COM", "a.com", true},
		{"a.com.", "a.com", true},
		{"ba.com", "a.com", false},
		{"a.com", "b.a.com", false},
		{"10.0.0.1", "0.0.1", false},
		{"1.10.0.0.1", "10.0.0.1", false},
		{"::1", "::1", true},
		{"", "a.com", false},
	}
	for _, tt := range tests {
		if got := sameHostOrSubdomain(tt.host, tt.parent); got != tt.want {
			t.Errorf("sameHostOrSubdomain(%q, %q) = %v; want %v", tt.host, tt.parent, got, tt.want)
		}
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

// A server that refuses every token, new ones included, costs one extra
// fetch per hold, not one per request; the hold doubles up to maxHold and
// ends with a resend that is not refused.
func TestServerRefusingEveryToken(t *testing.T) {
	clk := testutil.NewClock()
	var calls atomic.Int64
	cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		n := calls.Add(1)
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	})
	var sends atomic.Int64
	var accept atomic.Bool
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sends.Add(1)
		status := http.StatusUnauthorized
		if accept.Load() {
			status = http.StatusOK
		}
		return &http.Response{StatusCode: status, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	tr := newTransport(cred, "s", &Options{Base: base}, clk.Now)
	do := func() *http.Response {
		t.Helper()
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://llm.example.com/", nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for range 100 {
		if resp := do(); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d; want the 401", resp.StatusCode)
		}
	}
	if c, s, r := calls.Load(), sends.Load(), tr.Stats().Retries; c != 2 || s != 101 || r != 1 {
		t.Fatalf("credential calls %d, sends %d, resends %d; want 2, 101, 1", c, s, r)
	}
	for i, hold := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		hold *= time.Second
		clk.Advance(hold - time.Millisecond)
		do()
		if c := calls.Load(); c != int64(i+2) {
			t.Fatalf("step %d: credential calls within a hold of %v = %d; want %d", i, hold, c, i+2)
		}
		clk.Advance(time.Millisecond)
		do()
		if c := calls.Load(); c != int64(i+3) {
			t.Fatalf("step %d: credential calls after a hold of %v = %d; want %d", i, hold, c, i+3)
		}
	}
	clk.Advance(maxHold)
	accept.Store(true)
	if resp := do(); resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d; want 200", resp.StatusCode)
	}
	if tr.refused.Load() != nil {
		t.Fatal("a successful request did not end the hold")
	}
}

// Many requests refused at once with the same new token start one hold of
// firstHold, not a doubling each.
func TestConcurrentRefusalsStartOneHold(t *testing.T) {
	clk := testutil.NewClock()
	var calls atomic.Int64
	cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		n := calls.Add(1)
		return credential.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: clk.Now().Add(time.Hour)}, nil
	})
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	tr := newTransport(cred, "s", &Options{Base: base}, clk.Now)
	if _, err := tr.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://llm.example.com/", nil)); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	// A request whose first send raced with the resend that discovered
	// the refusal may fetch one more token, which is refused as new too;
	// the hold doubles once per such token, never per request.
	r, n := tr.refused.Load(), calls.Load()
	if r == nil || n > 4 || r.hold != firstHold<<(n-2) {
		t.Fatalf("hold %+v after %d credential calls; want %v after 2 calls, doubled once per further call", r, n, firstHold)
	}
}
