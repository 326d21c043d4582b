package hosts

import "testing"

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LocalHost", true},
		{"127.0.0.1", true},
		{"127.255.1.2", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"128.0.0.1", false},
		{"10.0.0.1", false},
		{"localhost.example.com", false},
		{"127.0.0.1.nip.io", false},
		{"::2", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.host); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v; want %v", tt.host, got, tt.want)
		}
	}
}

func TestSameOrSubdomain(t *testing.T) {
	tests := []struct {
		host, parent string
		want         bool
	}{
		{"a.com", "a.com", true},
		{"b.a.com", "a.com", true},
		{"A.COM", "a.com", true},
		{"a.com.", "a.com", true},
		{"ba.com", "a.com", false},
		{"a.com", "b.a.com", false},
		{"10.0.0.1", "0.0.1", false},
		{"1.10.0.0.1", "10.0.0.1", false},
		{"::1", "::1", true},
		{"", "a.com", false},
	}
	for _, tt := range tests {
		if got := SameOrSubdomain(tt.host, tt.parent); got != tt.want {
			t.Errorf("SameOrSubdomain(%q, %q) = %v; want %v", tt.host, tt.parent, got, tt.want)
		}
	}
}

// Unicode case mapping made different names equal (FuzzSameHostOrSubdomain,
// testdata/fuzz/FuzzSameHostOrSubdomain/invalid-utf8-folded-equal and
// kelvin-sign): only ASCII is folded, other names must match exactly.
func TestSameOrSubdomainNonASCII(t *testing.T) {
	tests := []struct {
		host, parent string
		want         bool
	}{
		{"\xc2", "\x83", false},
		{"evil.\u212aey.com", "key.com", false}, // Kelvin sign
		{"ev_il.\u212aey.com", "key.com", false},
		{"a.bücher.example", "bücher.example", false},
		{"bücher.example", "bücher.example", true},
		{"B\u00fccher.example.", "b\u00fccher.example", true},
		{"EU.LLM.example.com", "llm.EXAMPLE.com", true},
	}
	for _, tt := range tests {
		if got := SameOrSubdomain(tt.host, tt.parent); got != tt.want {
			t.Errorf("SameOrSubdomain(%q, %q) = %v; want %v", tt.host, tt.parent, got, tt.want)
		}
	}
}
