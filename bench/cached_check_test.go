package bench

import (
	"maps"
	"net/http"
	"slices"
	"testing"
)

// recordingBase remembers the last request it was given.
type recordingBase struct {
	cannedBase
	got *http.Request
}

func (b *recordingBase) RoundTrip(r *http.Request) (*http.Response, error) {
	b.got = r
	return b.cannedBase.RoundTrip(r)
}

// TestImplsSetTheHeader checks that every implementation the benchmarks
// compare sends the token, and leaves the caller's request as it was, so
// that reusing one request across iterations measures the same work.
func TestImplsSetTheHeader(t *testing.T) {
	for _, im := range impls(true) {
		t.Run(im.name, func(t *testing.T) {
			base := &recordingBase{cannedBase: *newCanned()}
			rt := rebase(t, im.name, base)
			req := newBenchRequest()
			want := req.Header.Clone()
			for range 3 {
				if _, err := rt.RoundTrip(req); err != nil {
					t.Fatal(err)
				}
				if got := base.got.Header.Get("Authorization"); got != "Bearer "+benchToken {
					t.Fatalf("Authorization = %q; want the bearer token", got)
				}
			}
			if !maps.EqualFunc(req.Header, want, slices.Equal) {
				t.Errorf("caller's header changed: %v; want %v", req.Header, want)
			}
		})
	}
}

// rebase builds the implementation called name over base.
func rebase(t *testing.T, name string, base http.RoundTripper) http.RoundTripper {
	t.Helper()
	switch name {
	case "floor":
		return floor{base: base}
	case "azcore-openai-go":
		return AzcorePerRequest(staticSource, base, benchMargin)
	}
	for _, p := range Peers() {
		if benchKey(p.Name) == name {
			rt, err := p.New(staticSource, base, benchMargin)
			if err != nil {
				t.Fatal(err)
			}
			return rt
		}
	}
	t.Fatalf("no implementation %q", name)
	return nil
}
