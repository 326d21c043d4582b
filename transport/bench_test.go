package transport

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
)

// The cached RoundTrip, side by side with the floor, x/oauth2 and azcore,
// is benchmarked in package bench.

// BenchmarkCacheGet is the fresh path of the token cache alone.
func BenchmarkCacheGet(b *testing.B) {
	// An expiring token, so that the clock is read as in production.
	tr := New(credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		return credential.AccessToken{Token: strings.Repeat("t", 64), ExpiresOn: time.Now().Add(time.Hour)}, nil
	}), "s", nil)
	ctx := context.Background()
	if _, err := tr.cache.Get(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("mode=serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.cache.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mode=parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := tr.cache.Get(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
