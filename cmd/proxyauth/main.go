// Command proxyauth gives programs that are not written in Go the tokens of
// the proxyauth library: `proxyauth token` prints one, and `proxyauth serve`
// runs a local gateway that forwards every request to one upstream with a
// bearer token in place of the client's API key, so that the OpenAI SDKs
// for Python and Node, curl scripts and other tools that take only a static
// key can talk to an LLM gateway that demands OAuth2 or Entra ID tokens.
//
//	proxyauth token [--header | --json]
//	proxyauth serve --upstream URL [--listen 127.0.0.1:4000] [--local-key-env NAME]
//
// Run `proxyauth <command> --help` for the flags and environment variables;
// docs/command.md in the repository has the whole manual.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

func main() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	c := &command{
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		getenv:  os.Getenv,
		signals: sig,
	}
	os.Exit(c.run(os.Args[1:]))
}

// command is one run of the program with its surroundings, so that tests can
// run it in-process with their own output, environment and signals.
type command struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// signals ends `serve` gracefully and cancels `token`.
	signals <-chan os.Signal
	// ready, if set, hears the address `serve` listens on once it accepts
	// connections.
	ready func(addr net.Addr)
	// azure, if set, replaces azidentity's DefaultAzureCredential.
	azure azcore.TokenCredential
	// timeouts, if set, replaces the server's timeouts.
	timeouts *timeouts
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // a failure at run time, such as the identity provider refusing
	exitUsage   = 2 // a missing, malformed or clashing setting
)

// usageError is a missing, malformed or clashing setting: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usage = `proxyauth puts OAuth2 or Entra ID bearer tokens on requests for programs
that take only an API key.

Usage:
  proxyauth token [--header | --json]   print a token
  proxyauth serve --upstream URL        run a local token-injecting gateway
  proxyauth --version                   print the version

Run 'proxyauth <command> --help' for a command's flags and environment.
`

// run runs the program with args (without the program name) and returns
// its exit status.
func (c *command) run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, usage)
		return exitOK
	case "-version", "--version", "version":
		fmt.Fprintf(c.stdout, "proxyauth %s\n", version())
		return exitOK
	case "token":
		err = c.token(args[1:])
	case "serve":
		err = c.serve(args[1:])
	default:
		fmt.Fprintf(c.stderr, "proxyauth: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.Is(err, errFlagParse):
		return exitUsage // the flag package has said what was wrong
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "proxyauth %s: %s\n", args[0], ue.msg)
		return exitUsage
	default:
		fmt.Fprintf(c.stderr, "proxyauth %s: %v\n", args[0], err)
		return exitFailure
	}
}

// version is the module version the binary was built from: v1.2.3 for
// `go install ...@v1.2.3`, "(devel)" for a build from a working tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// interrupted returns a context that ends when a signal arrives, for a
// command that has nothing to drain.
func (c *command) interrupted() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.signals:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
