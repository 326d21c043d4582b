package redact

import (
	"fmt"
	"testing"
)

type secretHolder struct{ secret string }

func (h secretHolder) Format(f fmt.State, verb rune) { Format(f, verb, "holder{secret:"+Redacted+"}") }

func TestFormat(t *testing.T) {
	h := secretHolder{secret: "hunter2"}
	tests := []struct{ format, want string }{
		{"%v", "holder{secret:REDACTED}"},
		{"%+v", "holder{secret:REDACTED}"},
		{"%#v", "holder{secret:REDACTED}"},
		{"%s", "holder{secret:REDACTED}"},
		{"%x", "holder{secret:REDACTED}"},
		{"%d", "holder{secret:REDACTED}"},
		{"%30v", "holder{secret:REDACTED}"},
		{"%q", `"holder{secret:REDACTED}"`},
	}
	for _, tt := range tests {
		if got := fmt.Sprintf(tt.format, h); got != tt.want {
			t.Errorf("Sprintf(%q) = %s; want %s", tt.format, got, tt.want)
		}
	}
	if got, want := fmt.Sprintf("%v", []any{h, &h}), "[holder{secret:REDACTED} holder{secret:REDACTED}]"; got != want {
		t.Errorf("in a slice: %s; want %s", got, want)
	}
}
