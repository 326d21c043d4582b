// Package hosts supports the transport and credential packages: the rules
// about host names, each defined once: which hosts are loopback, to which
// plain http may carry a token or a client secret, and which hosts a
// redirect may take a token to.
package hosts

import (
	"net"
	"strings"
)

// IsLoopback reports whether host (without port) is "localhost" or a
// loopback address: 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SameOrSubdomain reports whether host is parent or a subdomain of it, as
// net/http decides whether a redirect keeps the Authorization header. Both
// are host names without ports, as URL.Hostname returns them; a final dot
// and the case of ASCII letters do not count.
//
// Only ASCII letters are folded, as DNS does. A name with other bytes must
// match exactly: net/http maps such names with IDNA first, and Unicode case
// mapping is no substitute (it folds the Kelvin sign into "k" and turns
// every invalid byte into U+FFFD, making different names equal).
func SameOrSubdomain(host, parent string) bool {
	host, parent = lowerASCII(strings.TrimSuffix(host, ".")), lowerASCII(strings.TrimSuffix(parent, "."))
	if host == parent {
		return true
	}
	// An IP address is neither a subdomain nor has one.
	if !isASCII(host) || !isASCII(parent) || strings.ContainsAny(host, ":%") || net.ParseIP(host) != nil || net.ParseIP(parent) != nil {
		return false
	}
	return len(host) > len(parent) && strings.HasSuffix(host, parent) && host[len(host)-len(parent)-1] == '.'
}

// lowerASCII lowercases the ASCII letters of s and leaves other bytes alone.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// isASCII reports whether s has no byte outside ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
