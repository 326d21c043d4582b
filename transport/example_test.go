package transport_test

import (
	"context"
	"errors"
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

// A request that gets no token fails with an error that wraps a
// *transport.FetchError, also through http.Client's *url.Error. It says
// how many token requests have failed in a row and when the next one may
// start, and wraps the credential's error: here the identity provider's
// refusal, a *credential.OAuth2Error.
func ExampleFetchError() {
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"client secret is wrong"}`)
	}))
	defer idp.Close()
	srv := proxy()
	defer srv.Close()

	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     "my-client-id",
		ClientSecret: "a-wrong-secret",
		TokenURL:     idp.URL,
		AuthStyle:    credential.AuthStyleHeader,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := transport.Wrap(http.DefaultClient, cred, "api://llm-proxy/.default", nil)
	start := time.Now()
	_, err = client.Get(srv.URL)

	var fe *transport.FetchError
	if errors.As(err, &fe) {
		fmt.Println("failed token requests in a row:", fe.Failures)
		// Until NextTry, requests without a token fail at once, and no
		// token request is made.
		fmt.Println("next try scheduled:", fe.NextTry.After(start))
	}
	var oe *credential.OAuth2Error
	if errors.As(err, &oe) {
		fmt.Println("identity provider:", oe.StatusCode, oe.Code)
	}
	// Output:
	// failed token requests in a row: 1
	// next try scheduled: true
	// identity provider: 401 invalid_client
}
