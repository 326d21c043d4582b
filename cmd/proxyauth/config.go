package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/credential/azuread"
)

var (
	// errHelp: --help was asked for and shown; exit status 0.
	errHelp = errors.New("help shown")
	// errFlagParse: the flag package has printed what was wrong; exit 2.
	errFlagParse = errors.New("bad flags")
)

// envSecret is the only place the client secret comes from: a command line
// is visible to every user of the machine and kept in shell histories.
const envSecret = "PROXYAUTH_CLIENT_SECRET"

// settings are how the command gets its tokens: from flags or, for each
// flag not given, from its environment variable.
type settings struct {
	credential string
	tokenURL   string
	clientID   string
	scope      string
	audience   string
	keyFile    string
	keyID      string
	assertFile string
	secret     string // from envSecret only
}

// setting is one flag and its environment variable.
type setting struct {
	flag, env, usage string
	dst              *string
}

func (st setting) String() string { return "--" + st.flag + " / " + st.env }

func (s *settings) list() []setting {
	return []setting{
		{"credential", "PROXYAUTH_CREDENTIAL", `"azure": azidentity's DefaultAzureCredential instead of OAuth2`, &s.credential},
		{"token-url", "PROXYAUTH_TOKEN_URL", "the OAuth2 token endpoint (https, or http to a loopback host)", &s.tokenURL},
		{"client-id", "PROXYAUTH_CLIENT_ID", "the OAuth2 client ID", &s.clientID},
		{"scope", "PROXYAUTH_SCOPE", "the scope of the tokens, space-separated (azure: required, e.g. https://cognitiveservices.azure.com/.default)", &s.scope},
		{"audience", "PROXYAUTH_AUDIENCE", "the audience form field of token requests (Auth0)", &s.audience},
		{"private-key-file", "PROXYAUTH_PRIVATE_KEY_FILE", "a PEM file with the RSA or ECDSA key that signs private_key_jwt assertions, instead of a secret (PKCS #8, PKCS #1 or SEC 1, unencrypted)", &s.keyFile},
		{"key-id", "PROXYAUTH_KEY_ID", `the "kid" header of the signed assertions (with --private-key-file)`, &s.keyID},
		{"assertion-file", "PROXYAUTH_ASSERTION_FILE", "a file with a client assertion (a Kubernetes service account token, a CI OIDC token), read for every token request, instead of a secret", &s.assertFile},
	}
}

func (s *settings) register(fs *flag.FlagSet) {
	for _, st := range s.list() {
		fs.StringVar(st.dst, st.flag, "", st.usage+" (env "+st.env+")")
	}
}

// resolve fills every setting whose flag was not given from its
// environment variable: flags win.
func (s *settings) resolve(fs *flag.FlagSet, getenv func(string) string) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, st := range s.list() {
		if !given[st.flag] {
			*st.dst = getenv(st.env)
		}
	}
	s.secret = getenv(envSecret)
}

func (s *settings) byFlag(name string) setting {
	for _, st := range s.list() {
		if st.flag == name {
			return st
		}
	}
	panic("no setting " + name)
}

// parse parses args into fs. --help prints help, the flags and envHelp to
// stdout. A client secret on the command line is refused before anything
// else, with a message that does not repeat it.
func (c *command) parse(fs *flag.FlagSet, args []string, help string) error {
	fs.SetOutput(c.stderr)
	fs.Usage = func() {}
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "client-secret" || name == "secret") {
			return usagef("the client secret is read from %s only, never from the command line, where other users and the shell history see it", envSecret)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, help)
			fmt.Fprintln(c.stdout, "\nFlags:")
			fs.SetOutput(c.stdout)
			fs.PrintDefaults()
			fmt.Fprint(c.stdout, envHelp)
			return errHelp
		}
		fmt.Fprintf(c.stderr, "Run 'proxyauth %s --help' for usage.\n", fs.Name())
		return errFlagParse
	}
	if fs.NArg() > 0 {
		// The argument itself is not repeated: it may be a secret that was
		// meant for a flag.
		return usagef("%s takes no arguments and got %d after its flags: every setting is a flag (run 'proxyauth %s --help')", fs.Name(), fs.NArg(), fs.Name())
	}
	return nil
}

const envHelp = `
Environment (a flag, when given, wins over its variable):
  PROXYAUTH_CLIENT_SECRET  the OAuth2 client secret; never a flag
  PROXYAUTH_CREDENTIAL, PROXYAUTH_TOKEN_URL, PROXYAUTH_CLIENT_ID,
  PROXYAUTH_SCOPE, PROXYAUTH_AUDIENCE, PROXYAUTH_PRIVATE_KEY_FILE,
  PROXYAUTH_KEY_ID, PROXYAUTH_ASSERTION_FILE: as the flags above
  The client authenticates with one of a secret, a private key file or an
  assertion file.
  With PROXYAUTH_CREDENTIAL=azure, azidentity reads its own variables
  (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, ...).

A missing or clashing setting exits with status 2, a failure at run time
(the identity provider refuses) with status 1.
`

// newCredential builds the credential that s describes. closeIdle closes
// the idle connections to the token endpoint when the command is done.
func (c *command) newCredential(s *settings) (cred credential.TokenCredential, closeIdle func(), err error) {
	switch strings.ToLower(s.credential) {
	case "", "oauth2":
	case "azure":
		for _, st := range []setting{s.byFlag("token-url"), s.byFlag("client-id"), s.byFlag("audience"),
			s.byFlag("private-key-file"), s.byFlag("key-id"), s.byFlag("assertion-file")} {
			if *st.dst != "" {
				return nil, nil, usagef("%s clashes with %s=azure: azidentity finds its own credentials (AZURE_CLIENT_ID, ...); unset one", st, s.byFlag("credential").env)
			}
		}
		if s.secret != "" {
			return nil, nil, usagef("%s clashes with %s=azure: azidentity reads AZURE_CLIENT_SECRET; unset one", envSecret, s.byFlag("credential").env)
		}
		if strings.TrimSpace(s.scope) == "" {
			return nil, nil, usagef("%s is required with %s=azure, e.g. https://cognitiveservices.azure.com/.default", s.byFlag("scope"), s.byFlag("credential").env)
		}
		return azuread.New(c.azure), func() {}, nil
	default:
		return nil, nil, usagef("%s is %q: want oauth2 (the default) or azure", s.byFlag("credential"), s.credential)
	}

	if s.tokenURL == "" {
		return nil, nil, usagef("%s is required (or %s=azure)", s.byFlag("token-url"), s.byFlag("credential").env)
	}
	if s.clientID == "" {
		return nil, nil, usagef("%s is required", s.byFlag("client-id"))
	}
	var given []string
	if s.secret != "" {
		given = append(given, envSecret)
	}
	if s.keyFile != "" {
		given = append(given, s.byFlag("private-key-file").String())
	}
	if s.assertFile != "" {
		given = append(given, s.byFlag("assertion-file").String())
	}
	switch {
	case len(given) == 0:
		return nil, nil, usagef("%s (in the environment), %s or %s is required: how the client authenticates",
			envSecret, s.byFlag("private-key-file"), s.byFlag("assertion-file"))
	case len(given) > 1:
		return nil, nil, usagef("%s clash: give one way for the client to authenticate", strings.Join(given, " and "))
	}
	cfg := credential.OAuth2Config{
		ClientID:     s.clientID,
		ClientSecret: s.secret,
		TokenURL:     s.tokenURL,
		KeyID:        s.keyID,
	}
	if s.keyFile != "" {
		key, err := readPrivateKey(s.keyFile)
		if err != nil {
			return nil, nil, usagef("%s: %v", s.byFlag("private-key-file"), err)
		}
		cfg.PrivateKey = key
	}
	if s.assertFile != "" {
		// Read again for every token request, since it is rotated in
		// place; checked here so that a wrong path is a setting error.
		if _, err := credential.AssertionFromFile(s.assertFile)(context.Background()); err != nil {
			return nil, nil, usagef("%s: %v", s.byFlag("assertion-file"), err)
		}
		cfg.ClientAssertion = credential.AssertionFromFile(s.assertFile)
	}
	if s.audience != "" {
		cfg.EndpointParams = url.Values{"audience": {s.audience}}
	}
	tr := newHTTPTransport()
	tr.ResponseHeaderTimeout = 20 * time.Second
	cfg.HTTPClient = &http.Client{Transport: tr, Timeout: fetchTimeout}
	o, err := credential.NewOAuth2(cfg)
	if err != nil {
		return nil, nil, usagef("%s", s.nameField(err))
	}
	return o, tr.CloseIdleConnections, nil
}

// nameField prefixes an error of NewOAuth2, which names a field of
// OAuth2Config, with the setting that field comes from.
func (s *settings) nameField(err error) string {
	msg := err.Error()
	for field, name := range map[string]string{
		"TokenURL":        s.byFlag("token-url").String(),
		"ClientID":        s.byFlag("client-id").String(),
		"ClientSecret":    envSecret,
		"EndpointParams":  s.byFlag("audience").String(),
		"PrivateKey":      s.byFlag("private-key-file").String(),
		"KeyID":           s.byFlag("key-id").String(),
		"ClientAssertion": s.byFlag("assertion-file").String(),
	} {
		if strings.Contains(msg, "OAuth2Config."+field) {
			return name + ": " + msg
		}
	}
	return msg
}

// fetchTimeout bounds one token request.
const fetchTimeout = 30 * time.Second

// newHTTPTransport returns the transport of the command's own connections,
// one for the token endpoint and one for the upstream, so that their idle
// connections can be closed when the command ends. It honours HTTPS_PROXY
// and NO_PROXY.
func newHTTPTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
