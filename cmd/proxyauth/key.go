package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// readPrivateKey reads the first private key of a PEM file: PKCS #8
// ("PRIVATE KEY"), PKCS #1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"),
// unencrypted. Other blocks, such as the EC PARAMETERS that openssl puts
// first, are skipped. Its errors name the file and never show its content.
func readPrivateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var block *pem.Block
	for rest := b; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM private key (a -----BEGIN PRIVATE KEY----- block)", path)
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
	}
	defer clear(block.Bytes)
	if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
		return nil, fmt.Errorf("%s holds an encrypted key: give it unencrypted, in a file only the user that runs proxyauth can read", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s holds a %q block: want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", path, block.Type)
	}
	if err != nil {
		// The parser's message can describe the bytes; the block type
		// says enough.
		return nil, fmt.Errorf("%s: its %s block does not parse as a key of that form", path, block.Type)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New(path + ": the key cannot sign")
	}
	return signer, nil
}
