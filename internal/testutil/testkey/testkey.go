// Package testkey gives tests private keys as production code meets them:
// behind a crypto.Signer whose concrete type says nothing, as a key in an
// HSM, a KMS or a TPM is, and with a self-signed certificate.
package testkey

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"sync"
	"testing"
	"time"
)

// Signer hides the concrete type of a key: it has only Public and Sign. It
// notes what each Sign call was asked, so that a test can check the hash
// and padding and count the signatures.
type Signer struct {
	key  crypto.Signer
	mu   sync.Mutex
	opts []crypto.SignerOpts
}

// Hide returns key behind a Signer.
func Hide(key crypto.Signer) *Signer { return &Signer{key: key} }

func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

func (s *Signer) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	s.opts = append(s.opts, opts)
	s.mu.Unlock()
	return s.key.Sign(r, digest, opts)
}

// Calls returns the options of every Sign call so far, in order.
func (s *Signer) Calls() []crypto.SignerOpts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]crypto.SignerOpts(nil), s.opts...)
}

// SelfSigned returns a self-signed client certificate for key, valid for
// an hour either side of now.
func SelfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "proxyauth test client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("creating a certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing the certificate just made: %v", err)
	}
	return cert
}
