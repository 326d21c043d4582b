package hosts

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
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
