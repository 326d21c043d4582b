package main

import (
	"encoding/json"
	"flag"
	"fmt"

	"github.com/proxyauth/proxyauth/transport"
)

const tokenHelp = `Usage: proxyauth token [--header | --json] [flags]

Prints a token of the configured credential on standard output: the bare
token, or with --header an HTTP header line, or with --json an object with
access_token, token_type and expires_on (Unix seconds; 0: never expires).
For scripts:

  curl -H "$(proxyauth token --header)" https://llm.example.com/v1/models
`

// token prints one token. It is the only output of the command that holds
// a token.
func (c *command) token(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	var s settings
	s.register(fs)
	header := fs.Bool("header", false, `print "Authorization: Bearer <token>"`)
	asJSON := fs.Bool("json", false, `print {"access_token": ..., "token_type": "Bearer", "expires_on": <Unix seconds>}`)
	if err := c.parse(fs, args, tokenHelp); err != nil {
		return err
	}
	if *header && *asJSON {
		return usagef("--header and --json clash: give one")
	}
	s.resolve(fs, c.getenv)
	cred, closeIdle, err := c.newCredential(&s)
	if err != nil {
		return err
	}
	defer closeIdle()

	// Through the transport's cache, so that a token it would not put on a
	// request (empty, unfit for a header, already expired) is refused here
	// by the same checks, with the same words.
	tr := transport.New(cred, s.scope, &transport.Options{FetchTimeout: fetchTimeout})
	ctx, cancel := c.interrupted()
	defer cancel()
	tok, err := tr.Token(ctx)
	if err != nil {
		return err
	}

	switch {
	case *header:
		_, err = fmt.Fprintf(c.stdout, "Authorization: Bearer %s\n", tok.Token)
	case *asJSON:
		var exp int64
		if !tok.ExpiresOn.IsZero() {
			exp = tok.ExpiresOn.Unix()
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetEscapeHTML(false)
		err = enc.Encode(struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresOn   int64  `json:"expires_on"`
		}{tok.Token, "Bearer", exp})
	default:
		_, err = fmt.Fprintln(c.stdout, tok.Token)
	}
	return err
}
