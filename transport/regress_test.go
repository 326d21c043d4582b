package transport

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/internal/testutil/testcred"
)

// Regression tests for bugs that the fuzz targets in fuzz_test.go found.

// An Authorization key put into the header map without canonicalisation
// does not go out beside the token (FuzzRoundTrip,
// testdata/fuzz/FuzzRoundTrip/noncanonical-authorization-key).
func TestNonCanonicalAuthorizationReplaced(t *testing.T) {
	up := &upstream{}
	tr := New(credential.Static("tok"), "s", &Options{Base: up})
	req, _ := http.NewRequest(http.MethodGet, "https://llm.example.com/", nil)
	req.Header["authorization"] = []string{"Bearer sk-lower"}
	req.Header["AUTHORIZATION"] = []string{"Bearer sk-upper"}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := up.sends()
	if len(s) != 1 || len(s[0].req.Header) != 1 || s[0].auth != "Bearer tok" {
		t.Fatalf("sent header %v; want only Authorization: Bearer tok", s[0].req.Header)
	}
	if len(req.Header) != 2 {
		t.Fatalf("the caller's header changed: %v", req.Header)
	}
}

// Printing a Transport must not read its internals while requests run.
// Before Transport had String and Format, %v read the retry counter without
// synchronisation, and %s made fmt walk into the cache and the base
// transport (their maps, atomics and the logger's writer). Found by the
// leak audit in hardening/leak_test.go. Run with -race.
func TestPrintTransportWhileInUse(t *testing.T) {
	var sends atomic.Int64
	base := testutil.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		status := http.StatusOK
		if sends.Add(1)%2 == 1 {
			status = http.StatusUnauthorized // every first send: a resend follows
		}
		return testutil.Response(r, status, ""), nil
	})
	tr := New(&testcred.Source{}, "s", &Options{Base: base})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, "https://llm.example.com/", nil)
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	for range 200 {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			if s := fmt.Sprintf(verb, tr); strings.Contains(s, "tok-") {
				t.Errorf("%s shows a token: %s", verb, s)
			}
		}
	}
	close(stop)
	testutil.Wait(t, &wg, "the requests running beside the printing to stop")
}
