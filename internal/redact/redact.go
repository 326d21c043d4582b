// Package redact supports the packages whose values hold secrets: the one
// way they print themselves.
package redact

import (
	"fmt"
	"io"
	"strconv"
)

// Redacted stands where a secret would be printed.
const Redacted = "REDACTED"

// Format is the body of every Format method of a type that holds a secret:
// it writes s, a description already stripped of secrets, for every verb,
// flag and width, quoted for %q. So %x cannot hex-dump the fields, and %+v
// or %#v cannot walk into them.
func Format(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}
