package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/proxyauth/proxyauth/internal/testutil"
)

// served is what a fault handler did with one request, as its
// ResponseWriter saw it.
type served struct {
	mu      sync.Mutex
	status  int    // 0: no status sent
	writes  []int  // the size of each Write, in order
	flushed []bool // flushed[i]: a Flush followed write i before the next write
	body    []byte // everything written
	gone    bool   // the client had hung up when the handler returned
}

// recorder is the ResponseWriter a fault handler writes to: it passes
// everything on and notes its shape.
type recorder struct {
	w http.ResponseWriter
	s *served
}

func (r recorder) Header() http.Header { return r.w.Header() }

func (r recorder) WriteHeader(code int) {
	r.s.mu.Lock()
	if r.s.status == 0 {
		r.s.status = code
	}
	r.s.mu.Unlock()
	r.w.WriteHeader(code)
}

func (r recorder) Write(p []byte) (int, error) {
	r.s.mu.Lock()
	if r.s.status == 0 {
		r.s.status = http.StatusOK // as net/http sends on the first Write
	}
	r.s.writes = append(r.s.writes, len(p))
	r.s.flushed = append(r.s.flushed, false)
	r.s.body = append(r.s.body, p...)
	r.s.mu.Unlock()
	return r.w.Write(p)
}

func (r recorder) Flush() {
	r.s.mu.Lock()
	if n := len(r.s.flushed); n > 0 {
		r.s.flushed[n-1] = true
	}
	r.s.mu.Unlock()
	r.w.(http.Flusher).Flush()
}

// observe returns a handler that runs f's handler on a recorder, and two
// channels: one closed when the request has reached the handler (its body
// read), one that receives what the handler did once it has returned.
func observe(f Fault) (http.Handler, <-chan struct{}, <-chan *served) {
	entered, done := make(chan struct{}), make(chan *served, 1)
	var once sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client that hangs up only once the body
		// has been read.
		_ = r.ParseForm()
		s := &served{}
		once.Do(func() { close(entered) })
		f.Handler.ServeHTTP(recorder{w, s}, r)
		s.mu.Lock()
		s.gone = r.Context().Err() != nil
		s.mu.Unlock()
		done <- s
	})
	return h, entered, done
}

type answer struct {
	resp *http.Response
	body []byte
	err  error
}

// TestFaults checks the shape of every fault: what the client gets (status,
// headers, body) and how the handler writes it (a trickle writes one byte at
// a time and flushes each, a stall writes nothing until the client hangs
// up). The slow faults end when the test hangs up, not at a deadline: no
// check depends on how fast the machine reads.
func TestFaults(t *testing.T) {
	var faultEvents atomic.Int64
	idp := NewTokenServer(TokenServerConfig{OnEvent: func(e Event) {
		if e.Kind == "fault" {
			faultEvents.Add(1)
		}
	}})
	defer idp.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	newRequest := func(ctx context.Context) *http.Request {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {idp.ClientID()}, "client_secret": {idp.ClientSecret()}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, idp.URL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	// post sends a token request and reads the whole answer. Its deadline
	// only detects a hang.
	post := func() answer {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.HangTimeout)
		defer cancel()
		resp, err := client.Do(newRequest(ctx))
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return answer{resp, b, err}
	}
	quick := func(check func(t *testing.T, f Fault, a answer)) func(*testing.T, Fault, <-chan struct{}, <-chan *served) {
		return func(t *testing.T, f Fault, _ <-chan struct{}, done <-chan *served) {
			a := post()
			testutil.Recv(t, done, "the fault handler to return")
			if a.err != nil {
				t.Fatalf("err = %v; want an answer", a.err)
			}
			check(t, f, a)
		}
	}

	checks := map[string]func(t *testing.T, f Fault, entered <-chan struct{}, done <-chan *served){
		// A stall sends nothing, not even a status, until the client
		// gives up; then it ends.
		"stall": func(t *testing.T, _ Fault, entered <-chan struct{}, done <-chan *served) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan answer, 1)
			go func() {
				resp, err := client.Do(newRequest(ctx))
				if err == nil {
					resp.Body.Close()
				}
				got <- answer{resp: resp, err: err}
			}()
			testutil.Recv(t, entered, "the stall to get the request")
			cancel()
			a := testutil.Recv(t, got, "the client to give up")
			s := testutil.Recv(t, done, "the stall to end once the client gave up")
			if a.resp != nil || !errors.Is(a.err, context.Canceled) {
				t.Errorf("client got %v, %v; want no answer, only its own cancellation", a.resp, a.err)
			}
			if s.status != 0 || len(s.writes) != 0 || !s.gone {
				t.Errorf("stall sent status %d and %d writes, ended with the client gone: %v; want nothing sent until the client hung up",
					s.status, len(s.writes), s.gone)
			}
		},
		"500": quick(func(t *testing.T, _ Fault, a answer) {
			if a.resp.StatusCode != 500 || !strings.Contains(string(a.body), idp.ClientSecret()) {
				t.Fatalf("got %d %q; want 500 echoing the form", a.resp.StatusCode, a.body)
			}
		}),
		"503 Retry-After": quick(func(t *testing.T, _ Fault, a answer) {
			if a.resp.StatusCode != 503 || a.resp.Header.Get("Retry-After") != "120" || !json.Valid(a.body) {
				t.Fatalf("got %d, Retry-After %q, %q; want 503, Retry-After 120, JSON", a.resp.StatusCode, a.resp.Header.Get("Retry-After"), a.body)
			}
		}),
		"429": quick(func(t *testing.T, _ Fault, a answer) {
			if a.resp.StatusCode != 429 || a.resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(a.body), `"slow_down"`) {
				t.Fatalf("got %d, Retry-After %q, %q; want 429 slow_down, Retry-After 1", a.resp.StatusCode, a.resp.Header.Get("Retry-After"), a.body)
			}
		}),
		"html": quick(func(t *testing.T, _ Fault, a answer) {
			if a.resp.StatusCode != 200 || !strings.HasPrefix(a.resp.Header.Get("Content-Type"), "text/html") || json.Valid(a.body) {
				t.Fatalf("got %d %q; want 200 text/html", a.resp.StatusCode, a.resp.Header.Get("Content-Type"))
			}
		}),
		"truncated JSON": quick(func(t *testing.T, f Fault, a answer) {
			if a.resp.StatusCode != 200 || json.Valid(a.body) || !strings.HasPrefix(string(a.body), `{"access_token":"`+f.Token+`"`) {
				t.Fatalf("got %d %q; want 200 with cut JSON holding the fault's token", a.resp.StatusCode, a.body)
			}
		}),
		"10 MB": quick(func(t *testing.T, f Fault, a answer) {
			if a.resp.StatusCode != 200 || len(a.body) < 10<<20 || !strings.HasPrefix(string(a.body[:100]), `{"access_token":"`+f.Token+`"`) {
				t.Fatalf("got %d, %d bytes; want 200 with 10 MB starting like a token answer", a.resp.StatusCode, len(a.body))
			}
		}),
		// A trickle answers 200 at once, then sends its body one byte at
		// a time, flushing each: the client gets bytes long before the
		// body is complete. The client reads two and hangs up.
		"trickle": func(t *testing.T, f Fault, _ <-chan struct{}, done <-chan *served) {
			ctx, cancel := context.WithTimeout(context.Background(), testutil.HangTimeout)
			defer cancel()
			resp, err := client.Do(newRequest(ctx))
			if err != nil {
				t.Fatalf("err = %v; want a 200 before the body", err)
			}
			defer resp.Body.Close()
			var first [2]byte
			n, err := io.ReadFull(resp.Body, first[:])
			cancel() // the client gives up
			s := testutil.Recv(t, done, "the trickle to end once the client gave up")
			if err != nil {
				t.Fatalf("read %d of 2 bytes: %v", n, err)
			}
			rest, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Errorf("the body ended (%q after %q); want it cut off by the client", rest, first)
			}
			want := `{"access_token":"` + f.Token
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(first[:]) != want[:2] {
				t.Errorf("client got %d %q, first bytes %q; want 200 application/json, %q", resp.StatusCode, resp.Header.Get("Content-Type"), first, want[:2])
			}
			if s.status != 200 || len(s.writes) < 2 || !s.gone {
				t.Fatalf("trickle sent status %d and %d writes, ended with the client gone: %v; want 200, then at least 2 writes until the client hung up",
					s.status, len(s.writes), s.gone)
			}
			for i, n := range s.writes {
				if n != 1 || !s.flushed[i] {
					t.Fatalf("write %d: %d bytes, flushed %v; want every write one byte, flushed", i, n, s.flushed[i])
				}
			}
			if !strings.HasPrefix(want, string(s.body)) {
				t.Errorf("trickle wrote %q; want the start of a token answer", s.body)
			}
		},
	}
	faults := Faults()
	if len(faults) != len(checks) {
		t.Fatalf("%d faults; want %d", len(faults), len(checks))
	}
	for _, f := range faults {
		t.Run(f.Name, func(t *testing.T) {
			check, ok := checks[f.Name]
			if !ok {
				t.Fatalf("no check for fault %q", f.Name)
			}
			h, entered, done := observe(f)
			idp.SetFault(h)
			check(t, f, entered, done)
		})
	}
	idp.SetFault(nil)
	if a := post(); a.err != nil || a.resp.StatusCode != 200 {
		t.Fatalf("after SetFault(nil): %v %v; want 200", a.resp, a.err)
	}
	if n := idp.Requests(); n != int64(len(faults))+1 {
		t.Fatalf("Requests() = %d; want %d", n, len(faults)+1)
	}
	idp.Close() // the fault events of handlers that have returned are in
	if n := faultEvents.Load(); n != int64(len(faults)) {
		t.Fatalf("%d fault events; want %d", n, len(faults))
	}
}

func TestClosedAddr(t *testing.T) {
	addr, err := ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("dialled %s", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v; want connection refused", err)
	}
}
