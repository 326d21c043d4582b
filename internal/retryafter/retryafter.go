// Package retryafter supports the credential and azuread packages: the one
// reading of an HTTP Retry-After header as a delay.
package retryafter

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Delay returns how long the Retry-After header in h asks a client to wait
// before its next request, counted from the answer (RFC 9110 section
// 10.2.3). The header holds delay seconds, taken as they are, or an HTTP
// date, from which the answer's own Date header is subtracted, so that a
// server whose clock differs from this machine's is still understood; an
// answer without a valid Date header is taken as sent at received. It
// returns 0 when the header is missing, is neither form, or names a moment
// that has passed. A delay too long for a time.Duration is the longest one.
func Delay(h http.Header, received time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if isDigits(v) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > math.MaxInt64/uint64(time.Second) {
			// All digits, so only too large to parse.
			return math.MaxInt64
		}
		return time.Duration(n) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	from := received
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		from = date
	}
	return max(at.Sub(from), 0)
}

// isDigits reports whether s is one or more ASCII digits, the only form of
// delay seconds: no sign, no fraction.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
