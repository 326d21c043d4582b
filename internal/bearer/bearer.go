// Package bearer supports the credential and tokencache packages: the one
// rule for what a bearer token may hold.
package bearer

// Valid reports whether token can follow "Bearer " in an Authorization
// header as it is: at least one byte, and every byte visible ASCII (0x21 to
// 0x7e). RFC 6750 allows fewer characters, but servers are not so strict;
// what matters is that a token can neither break the header (CR, LF, a
// space) nor be refused by net/http with its value in the error message.
func Valid(token string) bool {
	if token == "" {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] < 0x21 || token[i] > 0x7e {
			return false
		}
	}
	return true
}
