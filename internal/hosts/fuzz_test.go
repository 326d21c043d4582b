package hosts

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/proxyauth/proxyauth/internal/testutil"
)

// FuzzIsLoopback checks the plain-http rule: a host it accepts is
// "localhost" or an address that netip, an independent parser, calls
// loopback, also when the host comes out of a URL as the transport gets it.
func FuzzIsLoopback(f *testing.F) {
	for _, s := range []string{
		"localhost", "LocalHost", "localhost.", "127.0.0.1", "127.9.8.7", "::1", "[::1]", "::ffff:127.0.0.1",
		"0:0:0:0:0:0:0:1", "::1%eth0", "127.1", "127.000.000.001", "0x7f.0.0.1", "2130706433", "10.0.0.1",
		"127.0.0.1.nip.io", "localhost.example.com", "127.0.0.1:80@evil.com", "[::1]:8080", "::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(host string) {
			got := IsLoopback(host)
			want := strings.EqualFold(host, "localhost")
			if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
				want = want || a.Unmap().IsLoopback()
			}
			if got != want {
				t.Fatalf("IsLoopback(%q) = %v; want %v", host, got, want)
			}
		}
		check(s)
		if u, err := url.Parse("http://" + s + "/"); err == nil {
			check(u.Hostname())
		}
	})
}

// asciiLower lowercases ASCII letters only, as DNS compares names.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// netHTTPKeepsAuth reports whether net/http's own client keeps an
// Authorization header that the caller set when https://parent/ redirects to
// https://host/. ok is false when net/http cannot make the two requests
// (a host that is not a valid URL host, or none: no request goes out
// without a host).
func netHTTPKeepsAuth(parent, host string) (kept, ok bool) {
	if parent == "" || host == "" {
		return false, false
	}
	from := url.URL{Scheme: "https", Host: parent, Path: "/"}
	to := url.URL{Scheme: "https", Host: host, Path: "/"}
	if u, err := url.Parse(from.String()); err != nil || u.Hostname() != parent {
		return false, false
	}
	if u, err := url.Parse(to.String()); err != nil || u.Hostname() != host {
		return false, false
	}
	reached := false
	c := &http.Client{Transport: testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Response == nil {
			h := http.Header{"Location": {to.String()}}
			return &http.Response{StatusCode: http.StatusFound, Header: h, Body: http.NoBody, Request: r}, nil
		}
		reached = true
		kept = r.Header.Get("Authorization") != ""
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})}
	req, err := http.NewRequest(http.MethodGet, from.String(), nil)
	if err != nil {
		return false, false
	}
	req.Header.Set("Authorization", "Bearer x")
	resp, err := c.Do(req)
	if err != nil {
		return false, false
	}
	resp.Body.Close()
	return kept, reached
}

// FuzzSameHostOrSubdomain checks the redirect rule against its definition
// and against what net/http's client does with an Authorization header.
func FuzzSameHostOrSubdomain(f *testing.F) {
	for _, s := range [][2]string{
		{"a.com", "a.com"}, {"b.a.com", "a.com"}, {"A.COM", "a.com"}, {"a.com.", "a.com"},
		{"ba.com", "a.com"}, {"a.com", "b.a.com"}, {"10.0.0.1", "0.0.1"}, {"5.1.2.3.4", "1.2.3.4"},
		{"::1", "::1"}, {"::1%.a.com", "a.com"}, {"", "a.com"}, {"a..", "."},
		{"bücher.example", "example"}, {"xn--bcher-kva.example", "bücher.example"},
		{"llm.example.com.evil.com", "llm.example.com"}, {"ev_il.llm.example.com", "llm.example.com"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, parent string) {
		got := SameOrSubdomain(host, parent)
		if got != SameOrSubdomain(strings.ToUpper(host), parent) && isASCII(host) {
			t.Fatalf("SameOrSubdomain(%q, %q) depends on ASCII case", host, parent)
		}
		if !got {
			return
		}
		h := asciiLower(strings.TrimSuffix(host, "."))
		p := asciiLower(strings.TrimSuffix(parent, "."))
		if h != p && !strings.HasSuffix(h, "."+p) {
			t.Fatalf("SameOrSubdomain(%q, %q) = true; but %q is neither %q nor a subdomain of it", host, parent, h, p)
		}
		if (net.ParseIP(h) != nil || net.ParseIP(p) != nil || strings.ContainsAny(h+p, ":%")) && h != p {
			t.Fatalf("SameOrSubdomain(%q, %q) = true for an IP address that is not the same", host, parent)
		}
		// Never more permissive than net/http, up to ASCII case and the
		// final dot of a fully qualified name (the same DNS name).
		if kept, ok := netHTTPKeepsAuth(p, h); ok && !kept {
			t.Fatalf("SameOrSubdomain(%q, %q) = true; net/http drops Authorization on a redirect from %q to %q", host, parent, p, h)
		}
	})
}

// FuzzSameHostAsNetHTTP checks the converse on ASCII names: where net/http
// keeps Authorization on a redirect, so does SameOrSubdomain, except where
// either host is an IP address: net/http takes "5.1.2.3.4" for a subdomain
// of "1.2.3.4", and "0.1.2.34" for one of "34".
func FuzzSameHostAsNetHTTP(f *testing.F) {
	for _, s := range [][2]string{
		{"a.com", "a.com"}, {"b.a.com", "a.com"}, {"ba.com", "a.com"}, {"5.1.2.3.4", "1.2.3.4"},
		{"x-y.a-b.c0m", "a-b.c0m"}, {"localhost", "localhost"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, parent string) {
		if !isASCII(host) || !isASCII(parent) {
			return
		}
		kept, ok := netHTTPKeepsAuth(parent, host)
		if !ok || !kept || net.ParseIP(parent) != nil || net.ParseIP(host) != nil {
			return
		}
		if !SameOrSubdomain(host, parent) {
			t.Fatalf("net/http keeps Authorization from %q to %q; SameOrSubdomain says no", parent, host)
		}
	})
}
