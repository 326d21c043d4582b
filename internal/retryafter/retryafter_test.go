package retryafter

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string // "" for none
		date       string // the answer's Date header; "" for none
		want       time.Duration
	}{
		{"none", "", "", 0},
		{"seconds", "120", "", 2 * time.Minute},
		{"zero seconds", "0", "", 0},
		{"seconds with spaces", "  7 ", "", 7 * time.Second},
		{"seconds ignore Date", "30", "Fri, 02 Jan 2026 03:00:00 GMT", 30 * time.Second},
		{"leading zeros", "007", "", 7 * time.Second},
		{"huge seconds", "99999999999999999999999", "", math.MaxInt64},
		{"just too many seconds for a Duration", "9223372037", "", math.MaxInt64},
		{"most seconds a Duration holds", "9223372036", "", 9223372036 * time.Second},
		{"negative", "-5", "", 0},
		{"plus sign", "+5", "", 0},
		{"fraction", "1.5", "", 0},
		{"junk", "soon", "", 0},
		{"date from receipt", "Fri, 02 Jan 2026 03:05:35 GMT", "", 90 * time.Second},
		{"date from the Date header", "Fri, 02 Jan 2026 03:05:35 GMT", "Fri, 02 Jan 2026 03:05:00 GMT", 35 * time.Second},
		{"date with a broken Date header", "Fri, 02 Jan 2026 03:05:35 GMT", "yesterday", 90 * time.Second},
		{"RFC 850 date", "Friday, 02-Jan-26 03:04:15 GMT", "", 10 * time.Second},
		{"asctime date", "Fri Jan  2 03:04:25 2026", "", 20 * time.Second},
		{"date passed", "Fri, 02 Jan 2026 03:00:00 GMT", "", 0},
		{"date now", "Fri, 02 Jan 2026 03:04:05 GMT", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			if got := Delay(h, received); got != tt.want {
				t.Errorf("Delay(Retry-After %q, Date %q) = %v; want %v", tt.retryAfter, tt.date, got, tt.want)
			}
		})
	}
}
