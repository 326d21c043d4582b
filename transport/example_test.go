package transport_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/transport"
)

// proxy stands in for an LLM proxy that demands a bearer token.
func proxy() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer demo-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "hello, authenticated caller")
	}))
}

// demoCredential issues one token that is valid for an hour.
var demoCredential = credential.Func(func(ctx context.Context, scope string) (credential.AccessToken, error) {
	return credential.AccessToken{Token: "demo-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
})

func ExampleWrap() {
	srv := proxy()
	defer srv.Close()

	client := transport.Wrap(http.DefaultClient, demoCredential, "api://llm-proxy/.default", nil)
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello, authenticated caller
}

func ExampleNew() {
	srv := proxy()
	defer srv.Close()

	tr := transport.New(demoCredential, "api://llm-proxy/.default", &transport.Options{
		RefreshBefore: 10 * time.Minute,
	})
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	for range 3 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	// Three requests, one token fetch.
	fmt.Printf("%+v\n", tr.Stats())
	// Output:
	// 200 OK
	// 200 OK
	// 200 OK
	// {Fetches:1 FetchErrors:0 Retries:0}
}

func ExampleTransport_AuthHeaders() {
	tr := transport.New(demoCredential, "api://llm-proxy/.default", nil)
	// For clients that take headers rather than an http.Client, such as a
	// WebSocket dialer.
	h, err := tr.AuthHeaders(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Get("Authorization"))
	// Output: Bearer demo-token
}
