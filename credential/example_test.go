package credential_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
)

// auth0Stub stands in for an Auth0 tenant's /oauth/token endpoint, which
// wants the API's identifier in an audience field and no scope. It answers
// in process: the returned client's transport is an httpmock.MockTransport.
func auth0Stub() *http.Client {
	mock := httpmock.NewMockTransport()
	mock.RegisterResponder(http.MethodPost, "https://example.auth0.com/oauth/token", func(r *http.Request) (*http.Response, error) {
		var resp *http.Response
		switch {
		case r.FormValue("client_secret") != "my-client-secret":
			resp = httpmock.NewStringResponse(http.StatusUnauthorized, `{"error":"access_denied","error_description":"Unauthorized"}`)
		case r.FormValue("audience") != "https://api.example.com":
			resp = httpmock.NewStringResponse(http.StatusForbidden, `{"error":"access_denied","error_description":"Service not enabled within domain"}`)
		default:
			resp = httpmock.NewStringResponse(http.StatusOK, `{"access_token":"auth0-access-token","token_type":"Bearer","expires_in":86400}`)
		}
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
	return &http.Client{Transport: mock}
}

// Auth0 identifies the API a token is for by an audience form field, which
// EndpointParams adds to every token request.
func ExampleNewOAuth2() {
	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:       "my-client-id",
		ClientSecret:   "my-client-secret",
		TokenURL:       "https://example.auth0.com/oauth/token",
		AuthStyle:      credential.AuthStyleParams, // Auth0 takes client_secret_post
		EndpointParams: url.Values{"audience": {"https://api.example.com"}},
		HTTPClient:     auth0Stub(), // in real use: nil, or a client of your own
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
	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:     "my-client-id",
		ClientSecret: "a-wrong-secret",
		TokenURL:     "https://example.auth0.com/oauth/token",
		AuthStyle:    credential.AuthStyleParams,
		HTTPClient:   auth0Stub(),
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
	fmt.Println(err)
	fmt.Printf("%+v\n", credential.OAuth2Config{ClientID: "my-client-id", ClientSecret: "a-wrong-secret"})
	// Output:
	// 401 access_denied Unauthorized
	// credential: token endpoint answered 401 Unauthorized: access_denied: "Unauthorized"
	// credential: OAuth2 token request to https://example.auth0.com/oauth/token for client_id "my-client-id": token endpoint answered 401 Unauthorized: access_denied: "Unauthorized"
	// credential.OAuth2Config{ClientID:"my-client-id" ClientSecret:REDACTED TokenURL:"" AuthStyle:Auto EndpointParams:[] HTTPClient:nil}
}
