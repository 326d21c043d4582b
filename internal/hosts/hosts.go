// Package hosts supports the transport and credential packages: the one
// definition of a loopback host, to which plain http may carry a token or a
// client secret.
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
