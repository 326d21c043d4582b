package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
)

// authValues returns every Authorization value of h, whatever the case of
// the key: net/http writes each key of the map, canonical or not.
func authValues(h http.Header) []string {
	var v []string
	for k, vs := range h {
		if strings.EqualFold(k, "Authorization") {
			v = append(v, vs...)
		}
	}
	return v
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Bits of FuzzRoundTrip's mode byte.
const (
	fuzzBodyKind    = 3      // 0 nil, 1 http.NoBody, 2 with GetBody, 3 without GetBody
	fuzzNoRetry     = 1 << 2 // Options.DisableRetry
	fuzzURLShift    = 3      // 2 bits: https, loopback http, remote http, redirect hop elsewhere
	fuzzBaseErr     = 1 << 5 // the base fails the first send
	fuzzSecondFails = 1 << 6 // the credential fails after its first token
	fuzzAllowHTTP   = 1 << 7 // Options.AllowHTTP
)

// FuzzRoundTrip drives RoundTrip with arbitrary methods, headers, bodies,
// tokens and statuses from a fake base, and checks the RoundTripper
// contract and the transport's own rules on every outcome.
func FuzzRoundTrip(f *testing.F) {
	f.Add("POST", "X-Trace", "abc", []byte(`{"model":"m"}`), uint8(2), 401, 200, "eyJ.abc.def")
	f.Add("GET", "Authorization", "Bearer sk-caller", []byte{}, uint8(0), 200, 200, "tok")
	f.Add("PUT", "X-Api-Key", "sk-other", []byte("x"), uint8(3), 401, 401, "tok")
	f.Add("DELETE", "Content-Type", "text/plain", []byte("x"), uint8(1|fuzzNoRetry), 401, 200, "tok")
	f.Add("GET", "X", "y", []byte(nil), uint8(2<<fuzzURLShift), 200, 200, "tok")
	f.Add("GET", "X", "y", []byte(nil), uint8(3<<fuzzURLShift|fuzzAllowHTTP), 401, 200, "tok")
	f.Add("PATCH", "X", "y", []byte("b"), uint8(2|fuzzSecondFails), 401, 200, "tok")
	f.Add("POST", "X", "y", []byte("b"), uint8(2|fuzzBaseErr), 0, 0, "tok")
	f.Add("G\x00T", "\r\n", "\x7f", []byte("b"), uint8(0), -1, 1<<40, "bad token\n")
	f.Fuzz(func(t *testing.T, method, hkey, hval string, payload []byte, mode uint8, status1, status2 int, token string) {
		const callerAuth = "Bearer sk-caller-key"
		// Markers make a leaked token findable however short the fuzzed part.
		tokenFor := func(n int64) string { return fmt.Sprintf("TK<%s>%d", token, n) }

		var credCalls atomic.Int64
		cred := credential.Func(func(ctx context.Context, _ string) (credential.AccessToken, error) {
			n := credCalls.Add(1)
			if n > 1 && mode&fuzzSecondFails != 0 {
				return credential.AccessToken{}, errors.New("identity provider down")
			}
			return credential.AccessToken{Token: tokenFor(n)}, nil
		})

		type call struct {
			auth []string // every Authorization value, whatever the key's case
			body string
			resp *http.Response
		}
		var calls []call
		var respBodies [2]*recordingBody
		baseErr := errors.New("connection reset by fuzz")
		base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			c := call{auth: authValues(r.Header)}
			if r.Body != nil {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				c.body = string(b)
			}
			i := len(calls)
			if i >= 2 {
				calls = append(calls, c)
				t.Fatalf("base called %d times; want at most 2", i+1)
			}
			if i == 0 && mode&fuzzBaseErr != 0 {
				calls = append(calls, c)
				return nil, baseErr
			}
			status := []int{status1, status2}[i]
			if status < 100 || status > 999 {
				status = 100 + int(uint(status)%900)
			}
			respBodies[i] = &recordingBody{Reader: strings.NewReader(fmt.Sprintf("resp-%d", i+1))}
			c.resp = &http.Response{StatusCode: status, Header: http.Header{}, Request: r, Body: respBodies[i]}
			calls = append(calls, c)
			return c.resp, nil
		})

		tr := New(cred, "s", &Options{Base: base, DisableRetry: mode&fuzzNoRetry != 0, AllowHTTP: mode&fuzzAllowHTTP != 0})

		target := []string{"https://llm.example.com/v1", "http://127.0.0.1:8080/v1", "http://llm.example.com/v1", "https://cdn.other.net/v1"}[mode>>fuzzURLShift&3]
		u, _ := url.Parse(target)
		req := &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		req = req.WithContext(context.Background())
		req.Header["Authorization"] = []string{callerAuth}
		req.Header[hkey] = []string{hval}
		hop := mode>>fuzzURLShift&3 == 3
		if hop {
			orig, _ := http.NewRequest(http.MethodGet, "https://llm.example.com/start", nil)
			req.Response = &http.Response{StatusCode: http.StatusFound, Request: orig}
		}
		var reqBody *recordingBody
		kind := mode & fuzzBodyKind
		switch kind {
		case 1:
			req.Body = http.NoBody
		case 2, 3:
			reqBody = &recordingBody{Reader: bytes.NewReader(payload)}
			req.Body = reqBody
			req.ContentLength = int64(len(payload))
			if kind == 2 {
				req.GetBody = func() (io.ReadCloser, error) {
					return &recordingBody{Reader: bytes.NewReader(payload)}, nil
				}
			}
		}
		replayable := kind != 3
		wantPayload := ""
		if kind >= 2 {
			wantPayload = string(payload)
		}

		before := struct {
			method, url, host string
			header            http.Header
			body              io.ReadCloser
			getBody, response bool
		}{req.Method, req.URL.String(), req.Host, req.Header.Clone(), req.Body, req.GetBody != nil, req.Response != nil}

		resp, err := tr.RoundTrip(req)

		// The RoundTripper contract.
		if (resp == nil) == (err == nil) {
			t.Fatalf("RoundTrip returned resp %v and err %v; want exactly one", resp != nil, err)
		}
		if req.Method != before.method || req.URL.String() != before.url || req.Host != before.host ||
			!reflect.DeepEqual(req.Header, before.header) || req.Body != before.body ||
			(req.GetBody != nil) != before.getBody || (req.Response != nil) != before.response {
			t.Fatalf("the caller's request was changed")
		}
		if kind >= 2 && reqBody.closed.Load() == 0 {
			t.Fatalf("request body not closed (%d base calls, err %v)", len(calls), err)
		}
		if resp != nil && (len(calls) == 0 || resp != calls[len(calls)-1].resp) {
			t.Fatalf("the response is not the base's last one")
		}
		if err != nil && len(calls) > 0 && (calls[len(calls)-1].resp != nil || !errors.Is(err, baseErr)) {
			t.Fatalf("err %v; want the base's own error", err)
		}

		// No secret in errors, whatever their verb.
		if err != nil {
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				for n := int64(1); n <= credCalls.Load(); n++ {
					if strings.Contains(s, tokenFor(n)) {
						t.Fatalf("error shows token %d: %s", n, s)
					}
				}
			}
		}

		insecure := !hop && mode&fuzzAllowHTTP == 0 && u.Scheme == "http" && u.Hostname() != "127.0.0.1"
		if insecure {
			if !errors.Is(err, ErrInsecureHTTP) || len(calls) != 0 {
				t.Fatalf("plain http to a remote host: err %v after %d sends; want ErrInsecureHTTP and none", err, len(calls))
			}
			return
		}
		if hop {
			// A hop to another host goes out as the caller made it.
			if len(calls) != 1 || fmt.Sprint(sorted(calls[0].auth)) != fmt.Sprint(sorted(authValues(before.header))) {
				t.Fatalf("redirect hop to another host: %d sends; want 1 with the caller's own Authorization", len(calls))
			}
			return
		}
		if len(calls) == 0 {
			// No token: the cause is the credential's answer.
			if err == nil {
				t.Fatal("nothing sent and no error")
			}
			return
		}
		first := calls[0]
		if len(first.auth) != 1 || first.auth[0] != "Bearer "+tokenFor(1) {
			t.Fatalf("first send carried Authorization %q; want only the token", first.auth)
		}
		if first.body != wantPayload {
			t.Fatalf("first send body %q; want %q", first.body, wantPayload)
		}
		if len(calls) == 2 {
			second := calls[1]
			if first.resp == nil || first.resp.StatusCode != http.StatusUnauthorized || mode&fuzzNoRetry != 0 || !replayable {
				t.Fatalf("resent after status %v, DisableRetry %v, replayable %v", first.resp != nil, mode&fuzzNoRetry != 0, replayable)
			}
			if len(second.auth) != 1 || second.auth[0] != "Bearer "+tokenFor(2) {
				t.Fatalf("resend carried Authorization %q; want only the new token", second.auth)
			}
			if second.body != wantPayload {
				t.Fatalf("resend body %q; want %q", second.body, wantPayload)
			}
			if respBodies[0].closed.Load() == 0 {
				t.Fatal("the 401 before the resend was not closed")
			}
			if st := tr.Stats(); st.Retries != 1 {
				t.Fatalf("Retries = %d; want 1", st.Retries)
			}
			resp.Body.Close()
			return
		}
		if first.resp != nil && first.resp.StatusCode == http.StatusUnauthorized && mode&fuzzNoRetry == 0 && replayable && mode&fuzzSecondFails == 0 {
			t.Fatal("a replayable 401 was not resent although a new token was available")
		}
		if resp != nil {
			// A response returned after one send is untouched.
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "resp-1" {
				t.Fatalf("response body %q; want it untouched", b)
			}
		}
	})
}
