package credential_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jarcoal/httpmock"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/transport"
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

// idpStub stands in for a token endpoint that authenticates clients by a
// client assertion: check says what is wrong with a request's form, if
// anything. It answers in process, through an httpmock.MockTransport.
func idpStub(tokenURL string, check func(form url.Values) error) *http.Client {
	mock := httpmock.NewMockTransport()
	mock.RegisterResponder(http.MethodPost, tokenURL, func(r *http.Request) (*http.Response, error) {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		var resp *http.Response
		switch err := check(r.PostForm); {
		case r.Header.Get("Authorization") != "" || r.PostForm.Has("client_secret"):
			resp = httpmock.NewStringResponse(http.StatusBadRequest, `{"error":"invalid_request","error_description":"more than one client authentication"}`)
		case r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
			resp = httpmock.NewStringResponse(http.StatusUnauthorized, `{"error":"invalid_client"}`)
		case err != nil:
			resp = httpmock.NewStringResponse(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"`+err.Error()+`"}`)
		default:
			resp = httpmock.NewStringResponse(http.StatusOK, `{"access_token":"issued-for-`+r.PostForm.Get("client_id")+`","token_type":"Bearer","expires_in":3600}`)
		}
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
	return &http.Client{Transport: mock}
}

// private_key_jwt (Okta, Keycloak, Auth0): the client proves who it is with
// a JWT signed by its private key, whose public key the server knows under
// KeyID. In real use the key comes from a PEM file (x509.ParsePKCS8PrivateKey)
// or is any crypto.Signer of an HSM, a KMS or a TPM.
func ExampleNewOAuth2_privateKey() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	const tokenURL = "https://example.okta.com/oauth2/default/v1/token"
	// The server verifies the signature with the public key it knows.
	server := idpStub(tokenURL, func(form url.Values) error {
		tok, err := jwt.Parse(form.Get("client_assertion"), func(*jwt.Token) (any, error) { return key.Public(), nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(tokenURL), jwt.WithIssuer("svc-reporting"), jwt.WithSubject("svc-reporting"))
		if err != nil {
			return err
		}
		fmt.Println("the server checked an assertion with kid", tok.Header["kid"])
		return nil
	})

	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:   "svc-reporting",
		TokenURL:   tokenURL,
		PrivateKey: key,
		KeyID:      "reporting-2025",
		HTTPClient: server, // in real use: nil, or a client of your own
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), "llm.invoke")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Token)
	fmt.Println(cred)
	// Output:
	// the server checked an assertion with kid reporting-2025
	// issued-for-svc-reporting
	// credential.OAuth2{ClientID:"svc-reporting" PrivateKey:*ecdsa.PrivateKey SigningMethod:ES256 KeyID:"reporting-2025" TokenURL:"https://example.okta.com/oauth2/default/v1/token" EndpointParams:[]}
}

// Workload identity federation: the platform hands the workload a
// short-lived JWT (a Kubernetes projected service account token, a CI
// system's OIDC token, a SPIFFE JWT-SVID), which goes to the token endpoint
// as the client assertion. AssertionFromFile reads the file again for every
// token request, so the token the kubelet rotates is picked up.
func ExampleAssertionFromFile() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// In real use: /var/run/secrets/azure/tokens/azure-identity-token, or
	// the path of the volume's serviceAccountToken projection.
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bGxtOmFwcCJ9.c2ln\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	const tokenURL = "https://login.microsoftonline.com/my-tenant/oauth2/v2.0/token"
	server := idpStub(tokenURL, func(form url.Values) error {
		fmt.Println("assertion from the file:", form.Get("client_assertion") == "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bGxtOmFwcCJ9.c2ln")
		return nil
	})

	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:        "00000000-0000-0000-0000-000000000001",
		TokenURL:        tokenURL,
		ClientAssertion: credential.AssertionFromFile(path),
		HTTPClient:      server,
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), "api://llm-proxy/.default")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Token)

	// A missing file is an error that names the path, never a content.
	os.Remove(path)
	_, err = cred.GetToken(context.Background(), "api://llm-proxy/.default")
	fmt.Println(strings.Replace(err.Error(), dir, "/tmp/dir", 1))
	// Output:
	// assertion from the file: true
	// issued-for-00000000-0000-0000-0000-000000000001
	// credential: OAuth2 token request to https://login.microsoftonline.com/my-tenant/oauth2/v2.0/token for client_id "00000000-0000-0000-0000-000000000001": client assertion: assertion file "/tmp/dir/token": no such file or directory
}

// ClientAssertion can get the assertion from anywhere: here a function
// that asks a workload API (a SPIFFE agent, a CI system's token service)
// for a JWT with the audience the token endpoint wants. It is called once
// per token request.
func ExampleNewOAuth2_clientAssertion() {
	workloadAPI := func(ctx context.Context, audience string) (string, error) {
		return "eyJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJ" + base64.RawURLEncoding.EncodeToString([]byte(audience)) + ".c2ln", nil
	}
	const tokenURL = "https://keycloak.example.com/realms/prod/protocol/openid-connect/token"
	server := idpStub(tokenURL, func(form url.Values) error {
		fmt.Println("client_id:", form.Get("client_id"))
		return nil
	})
	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID: "llm-gateway",
		TokenURL: tokenURL,
		ClientAssertion: func(ctx context.Context) (string, error) {
			return workloadAPI(ctx, "https://keycloak.example.com/realms/prod")
		},
		HTTPClient: server,
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Token)
	// Output:
	// client_id: llm-gateway
	// issued-for-llm-gateway
}

// RFC 8705 mutual TLS: the TLS client certificate of the HTTPClient
// authenticates the client, and the form carries client_id alone. Here the
// token endpoint is a local TLS server that requires the certificate.
func ExampleNewOAuth2_mutualTLS() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "svc-reporting"}, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		fmt.Printf("certificate %s, form %v\n", r.TLS.PeerCertificates[0].Subject.CommonName, r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"certificate-bound-token","token_type":"Bearer","expires_in":3600}`)
	}))
	server.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	server.StartTLS()
	defer server.Close()

	// In real use: tls.LoadX509KeyPair("client.crt", "client.key").
	tr := server.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
	defer tr.CloseIdleConnections()

	cred, err := credential.NewOAuth2(credential.OAuth2Config{
		ClientID:   "svc-reporting",
		TokenURL:   server.URL + "/oauth2/token",
		HTTPClient: &http.Client{Transport: tr},
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), "llm.invoke")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Token)
	// Output:
	// certificate svc-reporting, form map[client_id:[svc-reporting] grant_type:[client_credentials] scope:[llm.invoke]]
	// certificate-bound-token
}

// busyError is what a credential of your own can return when its identity
// provider asks it to wait: a RetryAfterError.
type busyError struct{ wait time.Duration }

func (e busyError) Error() string                  { return "identity provider busy" }
func (e busyError) RetryAfterDelay() time.Duration { return e.wait }

// A credential that returns a RetryAfterError gets no call before the delay
// has passed: until then every request gets the error at once, and the
// FetchError says when the next try may start.
func ExampleRetryAfterError() {
	var calls int
	cred := credential.Func(func(context.Context, string) (credential.AccessToken, error) {
		calls++
		return credential.AccessToken{}, busyError{wait: 30 * time.Second}
	})
	tr := transport.New(cred, "llm", nil)
	for range 3 {
		_, err := tr.Token(context.Background())
		if fe, ok := errors.AsType[*transport.FetchError](err); ok {
			fmt.Printf("%v; next try in about %v\n", fe.Err, time.Until(fe.NextTry).Round(10*time.Second))
		}
	}
	fmt.Println("credential calls:", calls)
	// Output:
	// identity provider busy; next try in about 30s
	// identity provider busy; next try in about 30s
	// identity provider busy; next try in about 30s
	// credential calls: 1
}
