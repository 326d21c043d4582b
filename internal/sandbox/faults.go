package sandbox

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Fault is a way a token endpoint fails in production. Its Handler answers
// a token request with that failure; put it in front of a TokenServer with
// SetFault.
type Fault struct {
	Name string
	http.Handler
	// Token is the access token that appears in the fault's body, if any
	// (a truncated or oversized answer starts like a good one), so that a
	// leak test can look for it.
	Token string
}

// Bounds of the slow faults, so that a test that forgets to give up still
// ends.
const (
	maxStall   = time.Minute
	maxTrickle = 60 // bytes, one a second
)

// Faults returns the faults of a token endpoint above TCP, in this order:
//
//   - "stall": no answer until the client gives up (at most a minute);
//   - "500": 500 with a plain text body;
//   - "503 Retry-After": 503 with Retry-After: 120 and an OAuth2 error body;
//   - "429": 429 with Retry-After: 1 and {"error":"slow_down"};
//   - "html": 200 with an HTML sign-in page, as a captive portal answers;
//   - "truncated JSON": 200 with a token answer cut in the middle;
//   - "10 MB": 200 with a 10 MB JSON body that starts like a token answer;
//   - "trickle": 200 with a token answer sent one byte a second (at most 60).
//
// The error bodies echo the request's Authorization header and form, as
// misbehaving servers do, so that leak tests can check that the client
// secret is scrubbed from errors. A refused connection is below HTTP: dial
// [ClosedAddr] instead.
func Faults() []Fault {
	trunc, huge, trickle := newToken(), newToken(), newToken()
	faults := []Fault{
		{Name: "stall", Handler: http.HandlerFunc(stall)},
		{Name: "500", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "internal error while handling %s", echo(r))
		})},
		{Name: "503 Retry-After", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{
				"error": "temporarily_unavailable", "error_description": "maintenance; your request was " + echo(r),
			})
		})},
		{Name: "429", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "slow_down"})
		})},
		{Name: "html", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in to continue</h1><p>Request: %s</p></body></html>", echo(r))
		})},
		{Name: "truncated JSON", Token: trunc, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"%s","token_type":"Bearer","expi`, trunc)
		})},
		{Name: "10 MB", Token: huge, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"%s","token_type":"Bearer","padding":"`, huge)
			pad := strings.Repeat("x", 64<<10)
			for range (10 << 20) / len(pad) {
				if _, err := io.WriteString(w, pad); err != nil {
					return // the client stopped reading
				}
			}
			io.WriteString(w, `"}`)
		})},
		{Name: "trickle", Token: trickle, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			body := fmt.Sprintf(`{"access_token":"%s","token_type":"Bearer","expires_in":3600}`, trickle)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for i := 0; i < len(body) && i < maxTrickle; i++ {
				if _, err := io.WriteString(w, body[i:i+1]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-t.C:
				case <-r.Context().Done():
					return
				}
			}
		})},
	}
	for i, f := range faults {
		faults[i].Handler = readsBody(f.Handler)
	}
	return faults
}

// readsBody reads the request's form before h runs. The server notices a
// client that hangs up, and cancels the request's context, only once the
// body has been read.
func readsBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		h.ServeHTTP(w, r)
	})
}

func stall(w http.ResponseWriter, r *http.Request) {
	t := time.NewTimer(maxStall)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// echo returns what a careless server repeats of a request: its
// Authorization header and its form.
func echo(r *http.Request) string {
	_ = r.ParseForm()
	return fmt.Sprintf("Authorization=%q form=%q", r.Header.Get("Authorization"), r.PostForm.Encode())
}

// ClosedAddr returns a loopback address ("127.0.0.1:port") on which nothing
// listens, so that a connection to it is refused.
func ClosedAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}
