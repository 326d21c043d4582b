// Command oauth2only is what an Okta or Keycloak user writes: an OAuth2
// client credentials token on every request of an http.Client. The
// footprint test builds it to check what such a user compiles.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/transport"
)

func main() {
	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     os.Getenv("CLIENT_ID"),
		ClientSecret: os.Getenv("CLIENT_SECRET"),
		TokenURL:     "https://idp.example.com/oauth2/token",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client := transport.Wrap(http.DefaultClient, cred, "llm.invoke", nil)
	resp, err := client.Get("https://llm.example.com/v1/models")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
}
