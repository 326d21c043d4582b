package bearer

import "testing"

func TestValid(t *testing.T) {
	tests := []struct {
		token string
		want  bool
	}{
		{"eyJhbGciOi.eyJzdWIi.c2ln", true},
		{"a-b_c.d~e+f/g=", true},
		{"!", true}, // 0x21, the first visible character
		{"~", true}, // 0x7e, the last
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"a\r\nX-Evil: 1", false},
		{"a\x00", false},
		{"a\x7f", false},
		{"tök", false},
		{"\x80", false},
	}
	for _, tt := range tests {
		if got := Valid(tt.token); got != tt.want {
			t.Errorf("Valid(%q) = %v; want %v", tt.token, got, tt.want)
		}
	}
}
