package credential

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// assertionLifetime is how long an assertion of private_key_jwt is valid:
// it is used once, at once, so a short life limits what a leaked one is
// worth. Okta takes at most an hour, Entra ten minutes.
const assertionLifetime = 5 * time.Minute

// minRSABits is the smallest RSA key accepted (RFC 7518 section 3.3).
const minRSABits = 2048

// assertionSigner makes the assertions of private_key_jwt (RFC 7523
// section 2.2) for one client and key.
type assertionSigner struct {
	clientID string
	audience string
	key      crypto.Signer
	method   *signerMethod
	keyID    string // "" for no kid header
	x5t      string // "" for no certificate
	x5tS256  string
	keyType  string // the signer's type, for String
	ownAud   bool   // audience is AssertionAudience, not the token URL
}

// newAssertionSigner checks the key, the signing method and the certificate
// of an OAuth2Config and returns their signer. Its errors name the field.
func newAssertionSigner(clientID, audience string, key crypto.Signer, method, keyID string, cert *x509.Certificate) (*assertionSigner, error) {
	pub, err := publicKey(key)
	if err != nil {
		return nil, err
	}
	m, err := pickMethod(pub, method)
	if err != nil {
		return nil, err
	}
	s := &assertionSigner{clientID: clientID, audience: audience, key: key, method: m, keyID: keyID, keyType: keyType(key)}
	if cert != nil {
		eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !eq.Equal(cert.PublicKey) {
			return nil, errors.New("credential: OAuth2Config.Certificate does not hold the public key of PrivateKey")
		}
		sum1, sum256 := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
		s.x5t = base64.RawURLEncoding.EncodeToString(sum1[:])
		s.x5tS256 = base64.RawURLEncoding.EncodeToString(sum256[:])
	}
	return s, nil
}

// publicKey returns key's public key if it is one that private_key_jwt can
// use. A Public method that panics, as a nil *rsa.PrivateKey's does, is a
// bad key rather than a crash.
func publicKey(key crypto.Signer) (pub crypto.PublicKey, err error) {
	defer func() {
		if recover() != nil {
			pub, err = nil, errors.New("credential: OAuth2Config.PrivateKey's Public method panicked; is it a nil key?")
		}
	}()
	switch p := key.Public().(type) {
	case *rsa.PublicKey:
		if p == nil || p.N == nil {
			break
		}
		if bits := p.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("credential: OAuth2Config.PrivateKey is an RSA key of %d bits; want %d or more", bits, minRSABits)
		}
		return p, nil
	case *ecdsa.PublicKey:
		if p == nil || p.Curve == nil {
			break
		}
		switch p.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return p, nil
		}
		return nil, fmt.Errorf("credential: OAuth2Config.PrivateKey is an ECDSA key on %s; want P-256, P-384 or P-521", p.Curve.Params().Name)
	default:
		return nil, fmt.Errorf("credential: OAuth2Config.PrivateKey has a public key of type %T; want RSA (%d bits or more) or ECDSA (P-256, P-384 or P-521)", p, minRSABits)
	}
	return nil, errors.New("credential: OAuth2Config.PrivateKey has a nil public key")
}

// The signing methods of private_key_jwt, by name.
var (
	methodRS256 = &signerMethod{alg: "RS256", hash: crypto.SHA256}
	methodPS256 = &signerMethod{alg: "PS256", hash: crypto.SHA256, pss: true}
	methodES256 = &signerMethod{alg: "ES256", hash: crypto.SHA256, curve: elliptic.P256()}
	methodES384 = &signerMethod{alg: "ES384", hash: crypto.SHA384, curve: elliptic.P384()}
	methodES512 = &signerMethod{alg: "ES512", hash: crypto.SHA512, curve: elliptic.P521()}
)

// pickMethod returns the signing method for pub: name's, which must fit
// the key, or by key type when name is empty.
func pickMethod(pub crypto.PublicKey, name string) (*signerMethod, error) {
	var fit []*signerMethod
	switch p := pub.(type) {
	case *rsa.PublicKey:
		fit = []*signerMethod{methodRS256, methodPS256}
	case *ecdsa.PublicKey:
		for _, m := range []*signerMethod{methodES256, methodES384, methodES512} {
			if m.curve == p.Curve {
				fit = []*signerMethod{m}
			}
		}
	}
	if name == "" {
		return fit[0], nil
	}
	for _, m := range fit {
		if m.alg == name {
			return m, nil
		}
	}
	switch name {
	case "RS256", "PS256", "ES256", "ES384", "ES512":
	default:
		return nil, fmt.Errorf("credential: OAuth2Config.SigningMethod %q is not one of RS256, PS256, ES256, ES384, ES512", name)
	}
	want := fit[0].alg
	if len(fit) > 1 {
		want += " or " + fit[1].alg
	}
	return nil, fmt.Errorf("credential: OAuth2Config.SigningMethod %s does not fit PrivateKey, %s; want %s", name, describeKey(pub), want)
}

func describeKey(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("an RSA key of %d bits", p.N.BitLen())
	case *ecdsa.PublicKey:
		return "an ECDSA key on " + p.Curve.Params().Name
	}
	return fmt.Sprintf("a %T", pub)
}

// assertion returns a new signed assertion: a JWT with its own jti, so
// that a server that remembers the jtis it has seen accepts each one once.
func (s *assertionSigner) assertion(context.Context) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": s.clientID,
		"sub": s.clientID,
		// One string, not an array: servers that follow
		// draft-ietf-oauth-rfc7523bis refuse an array.
		"aud": s.audience,
		"jti": rand.Text(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	}
	tok := jwt.NewWithClaims(s.method, claims)
	if s.keyID != "" {
		tok.Header["kid"] = s.keyID
	}
	if s.x5t != "" {
		tok.Header["x5t"] = s.x5t
		tok.Header["x5t#S256"] = s.x5tS256
	}
	return tok.SignedString(s.key)
}

// String describes the signer without anything of the key but its type.
func (s *assertionSigner) String() string {
	str := fmt.Sprintf("PrivateKey:%s SigningMethod:%s", s.keyType, s.method.alg)
	if s.keyID != "" {
		str += fmt.Sprintf(" KeyID:%q", s.keyID)
	}
	if s.x5t != "" {
		str += " Certificate:set"
	}
	if s.ownAud {
		str += fmt.Sprintf(" AssertionAudience:%q", redactURL(s.audience))
	}
	return str
}

// signerMethod is a [jwt.SigningMethod] that signs through any
// crypto.Signer, so that a key in an HSM, a KMS or a TPM can sign: the JOSE
// library's own methods want an *rsa.PrivateKey or *ecdsa.PrivateKey. The
// signer does the cryptography; this only hashes the input and puts the
// signature in the form JWS wants (RFC 7518 section 3).
type signerMethod struct {
	alg   string
	hash  crypto.Hash
	pss   bool           // RSASSA-PSS rather than PKCS #1 v1.5
	curve elliptic.Curve // nil for RSA
}

var _ jwt.SigningMethod = (*signerMethod)(nil)

func (m *signerMethod) Alg() string { return m.alg }

// Verify is not needed: a client only signs its assertions.
func (m *signerMethod) Verify(string, []byte, any) error {
	return errors.New("credential: client assertions are signed here, not verified")
}

// Sign signs signingString with key, a crypto.Signer.
func (m *signerMethod) Sign(signingString string, key any) ([]byte, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("credential: %s needs a crypto.Signer, not a %T", m.alg, key)
	}
	h := m.hash.New()
	io.WriteString(h, signingString)
	digest := h.Sum(nil)
	var opts crypto.SignerOpts = m.hash
	if m.pss {
		// RFC 7518 section 3.5: the salt is as long as the hash.
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: m.hash}
	}
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("credential: OAuth2Config.PrivateKey could not sign (%s): %w", m.alg, err)
	}
	if m.curve == nil {
		return sig, nil
	}
	return ecdsaJWS(sig, m.curve)
}

// ecdsaJWS turns an ECDSA signature in ASN.1 DER, as crypto.Signer returns
// it, into the JWS form: R and S as big-endian integers of the curve's size,
// one after the other (RFC 7518 section 3.4).
func ecdsaJWS(der []byte, curve elliptic.Curve) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 {
		return nil, errors.New("credential: OAuth2Config.PrivateKey returned an ECDSA signature that is not ASN.1 DER")
	}
	size := (curve.Params().BitSize + 7) / 8
	if rs.R.BitLen() > 8*size || rs.S.BitLen() > 8*size {
		return nil, errors.New("credential: OAuth2Config.PrivateKey returned an ECDSA signature too long for its curve")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

// maxAssertionFile bounds what AssertionFromFile reads: a projected token
// is a few kilobytes, and a wrong path (a log, a device) must not fill the
// memory.
const maxAssertionFile = 64 << 10

// AssertionFromFile returns a ClientAssertion that reads path on every call
// (trimmed of whitespace; an empty or missing file is an error naming the
// path, never the content). Kubernetes rotates projected service account
// tokens in place, so the file is read again for every token request. A
// file of more than 64 KiB is an error too.
func AssertionFromFile(path string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		f, err := os.Open(path)
		if err != nil {
			return "", fileError(path, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxAssertionFile+1))
		if err != nil {
			return "", fileError(path, err)
		}
		if len(b) > maxAssertionFile {
			return "", fmt.Errorf("credential: assertion file %q has more than %d bytes; is it the right file?", path, maxAssertionFile)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return "", fmt.Errorf("credential: assertion file %q is empty", path)
		}
		return string(b), nil
	}
}

// fileError names path and why it could not be read. The cause stays
// reachable for errors.Is (fs.ErrNotExist), but a *fs.PathError is not
// repeated whole: it would name the path twice.
func fileError(path string, err error) error { return &pathError{path: path, err: err} }

type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string {
	cause := e.err
	var pe *os.PathError
	if errors.As(cause, &pe) {
		cause = pe.Err
	}
	return fmt.Sprintf("credential: assertion file %q: %v", e.path, cause)
}

func (e *pathError) Unwrap() error { return e.err }
