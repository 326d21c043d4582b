package credential_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/proxyauth/proxyauth/credential"
)

// auth0Stub stands in for an Auth0 tenant's /oauth/token endpoint, which
// wants the API's identifier in an audience field and no scope.
func auth0Stub() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.FormValue("client_secret") != "my-client-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"access_denied","error_description":"Unauthorized"}`)
			return
		}
		if r.FormValue("audience") != "https://api.example.com" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":"access_denied","error_description":"Service not enabled within domain"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"auth0-access-token","token_type":"Bearer","expires_in":86400}`)
	}))
}

// Auth0 identifies the API a token is for by an audience form field, which
// EndpointParams adds to every token request.
func ExampleNewOAuth2() {
	srv := auth0Stub() // in real use: https://YOUR_DOMAIN.auth0.com/oauth/token
	defer srv.Close()

	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:       "my-client-id",
		ClientSecret:   "my-client-secret",
		TokenURL:       srv.URL + "/oauth/token",
		AuthStyle:      credential.AuthStyleParams, // Auth0 takes client_secret_post
		EndpointParams: url.Values{"audience": {"https://api.example.com"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Token)
	fmt.Println(time.Until(tok.ExpiresOn).Round(time.Hour))
	// Output:
	// auth0-access-token
	// 24h0m0s
}

// An error answer of the token endpoint is an *OAuth2Error; printing a
// credential or a token never shows the secret.
func ExampleOAuth2Error() {
	srv := auth0Stub()
	defer srv.Close()

	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     "my-client-id",
		ClientSecret: "a-wrong-secret",
		TokenURL:     srv.URL + "/oauth/token",
		AuthStyle:    credential.AuthStyleParams,
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = cred.GetToken(context.Background(), "")
	var oe *credential.OAuth2Error
	if errors.As(err, &oe) {
		fmt.Println(oe.StatusCode, oe.Code, oe.Description)
		fmt.Println(oe)
	}
	fmt.Printf("%+v\n", credential.OAuth2Config{ClientID: "my-client-id", ClientSecret: "a-wrong-secret"})
	// Output:
	// 401 access_denied Unauthorized
	// credential: token endpoint answered 401 Unauthorized: access_denied: "Unauthorized"
	// credential.OAuth2Config{ClientID:"my-client-id" ClientSecret:REDACTED TokenURL:"" AuthStyle:Auto EndpointParams:[] HTTPClient:nil}
}

// With nil, NewAzureAD uses azidentity's DefaultAzureCredential, created on
// the first GetToken: managed identity in Azure, workload identity in AKS,
// environment variables or the Azure CLI on a developer's machine.
func ExampleNewAzureAD() {
	cred := credential.NewAzureAD(nil)
	tok, err := cred.GetToken(context.Background(), "https://cognitiveservices.azure.com/.default")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.ExpiresOn)
}

// Any azidentity credential can be adapted, such as a service principal's
// client secret.
func ExampleNewAzureAD_clientSecret() {
	sp, err := azidentity.NewClientSecretCredential("TENANT_ID", "CLIENT_ID", "CLIENT_SECRET", nil)
	if err != nil {
		log.Fatal(err)
	}
	cred := credential.NewAzureAD(sp)
	_ = cred // pass cred to transport.New or transport.Wrap
}
