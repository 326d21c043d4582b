package credential_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil/testkey"
)

// TestNewOAuth2ValidatesClientAuth covers the rules of client
// authentication without a secret: which fields may go together, which
// keys, signing methods and certificates are taken, and that every error
// names the field it is about.
func TestNewOAuth2ValidatesClientAuth(t *testing.T) {
	t.Parallel()
	assertion := func(context.Context) (string, error) { return "a.b.c", nil }
	rsaCert := testkey.SelfSigned(t, rsaKey())
	const tokenURL = "https://idp.example/oauth2/token"
	withKey := func(k crypto.Signer, change ...func(*credential.OAuth2Config)) credential.OAuth2Config {
		c := credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, PrivateKey: k}
		for _, f := range change {
			f(&c)
		}
		return c
	}
	tests := []struct {
		name    string
		cfg     credential.OAuth2Config
		wantErr []string // substrings; none for no error
	}{
		{"RSA key", withKey(rsaKey()), nil},
		{"RSA key hidden in a signer", withKey(testkey.Hide(rsaKey())), nil},
		{"RSA key, PS256", withKey(rsaKey(), func(c *credential.OAuth2Config) { c.SigningMethod = "PS256" }), nil},
		{"RSA key, RS256", withKey(rsaKey(), func(c *credential.OAuth2Config) { c.SigningMethod = "RS256" }), nil},
		{"P-256 key", withKey(ecKeys["P-256"]()), nil},
		{"P-384 key hidden, ES384", withKey(testkey.Hide(ecKeys["P-384"]()), func(c *credential.OAuth2Config) { c.SigningMethod = "ES384" }), nil},
		{"P-521 key, ES512", withKey(ecKeys["P-521"](), func(c *credential.OAuth2Config) { c.SigningMethod = "ES512" }), nil},
		{"key with every key-only field", withKey(rsaKey(), func(c *credential.OAuth2Config) {
			c.KeyID, c.Certificate, c.AssertionAudience, c.SigningMethod = "k1", rsaCert, "https://idp.example", "PS256"
		}), nil},
		{"ClientAssertion", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientAssertion: assertion}, nil},
		{"AssertionFromFile", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientAssertion: credential.AssertionFromFile("/nonexistent")}, nil},
		{"mTLS: HTTPClient and nothing else", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, HTTPClient: &http.Client{}}, nil},

		{"nothing", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL},
			[]string{"OAuth2Config.ClientSecret, PrivateKey or ClientAssertion is required", "a secret, a key or an assertion"}},
		{"secret and key", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientSecret: "s", PrivateKey: rsaKey()},
			[]string{"OAuth2Config.ClientSecret and PrivateKey are both set"}},
		{"secret and assertion", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientSecret: "s", ClientAssertion: assertion},
			[]string{"OAuth2Config.ClientSecret and ClientAssertion are both set"}},
		{"key and assertion", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, PrivateKey: rsaKey(), ClientAssertion: assertion},
			[]string{"OAuth2Config.PrivateKey and ClientAssertion are both set"}},
		{"all three", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientSecret: "s", PrivateKey: rsaKey(), ClientAssertion: assertion},
			[]string{"OAuth2Config.ClientSecret and PrivateKey and ClientAssertion are all set"}},

		{"KeyID with a secret", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientSecret: "s", KeyID: "k"},
			[]string{"OAuth2Config.KeyID is set without PrivateKey"}},
		{"Certificate with an assertion", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientAssertion: assertion, Certificate: rsaCert},
			[]string{"OAuth2Config.Certificate is set without PrivateKey"}},
		{"AssertionAudience with an assertion", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientAssertion: assertion, AssertionAudience: "https://idp.example"},
			[]string{"OAuth2Config.AssertionAudience is set without PrivateKey"}},
		{"SigningMethod with mTLS", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, HTTPClient: &http.Client{}, SigningMethod: "RS256"},
			[]string{"OAuth2Config.SigningMethod is set without PrivateKey"}},

		{"AuthStyle with a key", withKey(rsaKey(), func(c *credential.OAuth2Config) { c.AuthStyle = credential.AuthStyleParams }),
			[]string{"OAuth2Config.AuthStyle Params applies to ClientSecret only", "PrivateKey"}},
		{"AuthStyle with an assertion", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, ClientAssertion: assertion, AuthStyle: credential.AuthStyleHeader},
			[]string{"OAuth2Config.AuthStyle Header applies to ClientSecret only", "ClientAssertion"}},
		{"AuthStyle with mTLS", credential.OAuth2Config{ClientID: "id", TokenURL: tokenURL, HTTPClient: &http.Client{}, AuthStyle: credential.AuthStyleHeader},
			[]string{"OAuth2Config.AuthStyle Header applies to ClientSecret only", "TLS client certificate"}},

		{"RSA key of 1024 bits", withKey(rsaKey1024()), []string{"OAuth2Config.PrivateKey is an RSA key of 1024 bits; want 2048 or more"}},
		{"hidden RSA key of 1024 bits", withKey(testkey.Hide(rsaKey1024())), []string{"OAuth2Config.PrivateKey is an RSA key of 1024 bits"}},
		{"P-224 key", withKey(ecKeys["P-224"]()), []string{"OAuth2Config.PrivateKey is an ECDSA key on P-224; want P-256, P-384 or P-521"}},
		{"Ed25519 key", withKey(edKey()), []string{"OAuth2Config.PrivateKey has a public key of type ed25519.PublicKey; want RSA"}},
		{"signer without a public key", withKey(noPublicKey{}), []string{"OAuth2Config.PrivateKey has a public key of type <nil>"}},
		{"nil *rsa.PrivateKey", withKey(nilRSAKey()), []string{"OAuth2Config.PrivateKey's Public method panicked"}},

		{"unknown SigningMethod", withKey(rsaKey(), func(c *credential.OAuth2Config) { c.SigningMethod = "HS256" }),
			[]string{`OAuth2Config.SigningMethod "HS256" is not one of RS256, PS256, ES256, ES384, ES512`}},
		{"SigningMethod in lower case", withKey(rsaKey(), func(c *credential.OAuth2Config) { c.SigningMethod = "rs256" }),
			[]string{`OAuth2Config.SigningMethod "rs256" is not one of`}},
		{"ES256 with an RSA key", withKey(rsaKey(), func(c *credential.OAuth2Config) { c.SigningMethod = "ES256" }),
			[]string{"OAuth2Config.SigningMethod ES256 does not fit PrivateKey, an RSA key of 2048 bits; want RS256 or PS256"}},
		{"RS256 with an ECDSA key", withKey(ecKeys["P-256"](), func(c *credential.OAuth2Config) { c.SigningMethod = "RS256" }),
			[]string{"OAuth2Config.SigningMethod RS256 does not fit PrivateKey, an ECDSA key on P-256; want ES256"}},
		{"ES384 with a P-256 key", withKey(testkey.Hide(ecKeys["P-256"]()), func(c *credential.OAuth2Config) { c.SigningMethod = "ES384" }),
			[]string{"OAuth2Config.SigningMethod ES384 does not fit PrivateKey, an ECDSA key on P-256; want ES256"}},

		{"Certificate of another key", withKey(rsaKey2(), func(c *credential.OAuth2Config) { c.Certificate = rsaCert }),
			[]string{"OAuth2Config.Certificate does not hold the public key of PrivateKey"}},
		{"Certificate of an RSA key with an ECDSA key", withKey(ecKeys["P-256"](), func(c *credential.OAuth2Config) { c.Certificate = rsaCert }),
			[]string{"OAuth2Config.Certificate does not hold the public key of PrivateKey"}},

		{"EndpointParams sets client_assertion", withKey(rsaKey(), func(c *credential.OAuth2Config) { c.EndpointParams = url.Values{"client_assertion": {"x"}} }), []string{`OAuth2Config.EndpointParams must not set "client_assertion"`}},
		{"EndpointParams sets client_assertion_type with a secret", credential.OAuth2Config{
			ClientID: "id", TokenURL: tokenURL, ClientSecret: "s", EndpointParams: url.Values{"client_assertion_type": {"x"}},
		}, []string{`OAuth2Config.EndpointParams must not set "client_assertion_type"`}},
		{"key but no TokenURL", credential.OAuth2Config{ClientID: "id", PrivateKey: rsaKey()}, []string{"OAuth2Config.TokenURL is required"}},
		{"key but no ClientID", credential.OAuth2Config{TokenURL: tokenURL, PrivateKey: rsaKey()}, []string{"OAuth2Config.ClientID is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := credential.NewOAuth2(tt.cfg)
			if len(tt.wantErr) == 0 {
				if err != nil || o == nil {
					t.Errorf("NewOAuth2: got %v, %v; want an OAuth2, nil", o, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewOAuth2: got no error; want one with %q", tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "credential: OAuth2Config.") {
				t.Errorf("NewOAuth2: got error %q; want one that starts by naming a field of OAuth2Config", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("NewOAuth2: got error %q; want one with %q", err, want)
				}
			}
		})
	}
}

// nilRSAKey is a typed nil in a crypto.Signer, whose Public panics.
func nilRSAKey() crypto.Signer {
	var k *rsa.PrivateKey
	return k
}

// noPublicKey is a signer that has lost its public key.
type noPublicKey struct{ crypto.Signer }

func (noPublicKey) Public() crypto.PublicKey { return nil }
