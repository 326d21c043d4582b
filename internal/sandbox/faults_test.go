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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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
	post := func(timeout time.Duration) (*http.Response, []byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {idp.ClientID()}, "client_secret": {idp.ClientSecret()}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, idp.URL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	checks := map[string]func(t *testing.T, f Fault, resp *http.Response, body []byte, err error){
		"stall": func(t *testing.T, _ Fault, _ *http.Response, _ []byte, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v; want the client's deadline", err)
			}
		},
		"500": func(t *testing.T, _ Fault, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 500 || !strings.Contains(string(body), idp.ClientSecret()) {
				t.Fatalf("got %v %v %q; want 500 echoing the form", resp, err, body)
			}
		},
		"503 Retry-After": func(t *testing.T, _ Fault, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "120" || !json.Valid(body) {
				t.Fatalf("got %v %v %q; want 503, Retry-After 120, JSON", resp, err, body)
			}
		},
		"429": func(t *testing.T, _ Fault, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 429 || !strings.Contains(string(body), "slow_down") {
				t.Fatalf("got %v %v %q; want 429 slow_down", resp, err, body)
			}
		},
		"html": func(t *testing.T, _ Fault, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("got %v %v; want 200 text/html", resp, err)
			}
		},
		"truncated JSON": func(t *testing.T, f Fault, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || json.Valid(body) || !strings.Contains(string(body), f.Token) {
				t.Fatalf("got %v %v %q; want 200 with cut JSON holding the fault's token", resp, err, body)
			}
		},
		"10 MB": func(t *testing.T, f Fault, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || len(body) < 10<<20 || !strings.Contains(string(body[:100]), f.Token) {
				t.Fatalf("got %v %v, %d bytes; want 200 with 10 MB", resp, err, len(body))
			}
		},
		"trickle": func(t *testing.T, _ Fault, resp *http.Response, body []byte, err error) {
			if resp == nil || resp.StatusCode != 200 || !errors.Is(err, context.DeadlineExceeded) || len(body) > 2 {
				t.Fatalf("got %v %v %q; want 200, then a byte or two before the deadline", resp, err, body)
			}
		},
	}
	faults := Faults()
	if len(faults) != len(checks) {
		t.Fatalf("%d faults; want %d", len(faults), len(checks))
	}
	for _, f := range faults {
		t.Run(f.Name, func(t *testing.T) {
			idp.SetFault(f)
			resp, body, err := post(300 * time.Millisecond)
			checks[f.Name](t, f, resp, body, err)
		})
	}
	idp.SetFault(nil)
	if resp, _, err := post(10 * time.Second); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after SetFault(nil): %v %v; want 200", resp, err)
	}
	if n := idp.Requests(); n != int64(len(faults))+1 {
		t.Fatalf("Requests() = %d; want %d", n, len(faults)+1)
	}
	idp.Close() // waits for the stalled and trickling handlers to end
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
