package credential

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http"
	"testing"

	"github.com/jarcoal/httpmock"
)

// TestECDSAJWS: the DER signature of a crypto.Signer becomes R and S of
// the curve's size each, zero-padded on the left; malformed or oversized
// signatures are errors.
func TestECDSAJWS(t *testing.T) {
	der := func(r, s *big.Int) []byte {
		b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	got, err := ecdsaJWS(der(big.NewInt(1), big.NewInt(0x0203)), elliptic.P256())
	want := make([]byte, 64)
	want[31], want[62], want[63] = 1, 2, 3
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("r=1, s=0x0203 on P-256: got %x, %v; want %x", got, err, want)
	}
	// P-521: 66 bytes each, for 521 bits.
	max521 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 521), big.NewInt(1))
	if got, err := ecdsaJWS(der(max521, big.NewInt(7)), elliptic.P521()); err != nil || len(got) != 132 || got[131] != 7 || got[0] != 0x01 {
		t.Errorf("P-521: got %d bytes %x..., %v; want 132 with R's top bit in byte 0", len(got), got[:2], err)
	}
	for name, sig := range map[string][]byte{
		"not DER":        []byte("not DER"),
		"trailing bytes": append(der(big.NewInt(1), big.NewInt(2)), 0),
		"zero R":         der(big.NewInt(0), big.NewInt(2)),
		"negative S":     der(big.NewInt(1), big.NewInt(-2)),
		"R too long":     der(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(2)),
	} {
		if got, err := ecdsaJWS(sig, elliptic.P256()); err == nil {
			t.Errorf("%s: got %x; want an error", name, got)
		}
	}
	// A real signature round-trips through the standard library.
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	digest := make([]byte, 48)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, digest)
	jws, err := ecdsaJWS(sig, elliptic.P384())
	if err != nil || len(jws) != 96 || !ecdsa.Verify(&key.PublicKey, digest, new(big.Int).SetBytes(jws[:48]), new(big.Int).SetBytes(jws[48:])) {
		t.Errorf("P-384 round trip: %d bytes, %v; want 96 that verify", len(jws), err)
	}
}

// A token endpoint's redirect is not followed with an assertion either:
// net/http would resend the form, assertion included, to the new place.
func TestOAuth2AssertionDoesNotFollowRedirects(t *testing.T) {
	const tokenURL = "https://idp.example/oauth2/token"
	mock := httpmock.NewMockTransport()
	mock.RegisterResponder(http.MethodPost, tokenURL, func(r *http.Request) (*http.Response, error) {
		resp := httpmock.NewStringResponse(http.StatusTemporaryRedirect, "")
		resp.Header.Set("Location", "https://attacker.example/steal")
		return resp, nil
	})
	mock.RegisterNoResponder(httpmock.NewStringResponder(200, `{"access_token":"stolen-token-1","expires_in":3600}`))
	follow := &http.Client{Transport: mock, CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
	o, err := NewOAuth2(OAuth2Config{
		ClientID: "id", TokenURL: tokenURL, HTTPClient: follow,
		ClientAssertion: func(context.Context) (string, error) { return "a.b.c", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.GetToken(context.Background(), "")
	var oe *OAuth2Error
	if !errors.As(err, &oe) || oe.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("err = %v; want an *OAuth2Error with status 307", err)
	}
	if n := mock.GetTotalCallCount(); n != 1 {
		t.Errorf("requests: got %d (%v); want 1, to the token URL", n, mock.GetCallCountInfo())
	}
}
