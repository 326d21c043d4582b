package proxyauth_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// An OAuth2 user (Okta, Keycloak, Auth0) must not pay for the Azure SDK, the
// SDKs the tests drive, or the servers the interop tests run. These tests
// build testdata/footprint/oauth2only, which uses only credential.NewOAuth2
// and transport.Wrap, next to the same program written with
// golang.org/x/oauth2/clientcredentials.

// allowedDeps are the only non-standard packages the OAuth2-only program
// may compile. A new entry is a cost every user pays: add one deliberately.
// github.com/golang-jwt/jwt/v5 signs the assertions of private_key_jwt
// (about 3% of the binary); it needs nothing outside the standard library.
var allowedDeps = regexp.MustCompile(`^(github\.com/proxyauth/proxyauth/(credential|transport|internal/(bearer|hosts|redact|retryafter|tokencache))|github\.com/golang-jwt/jwt/v5|golang\.org/x/oauth2(/internal)?|golang\.org/x/sync/singleflight)$`)

// maxSizeRatio bounds the OAuth2-only program's binary against the x/oauth2
// program's.
const maxSizeRatio = 1.15

// goTool runs the go command in dir and returns its standard output.
func goTool(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH (install Go 1.26): %v", err)
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	return out
}

func TestFootprintOAuth2OnlyDependencies(t *testing.T) {
	t.Parallel()
	out := goTool(t, ".", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./testdata/footprint/oauth2only")
	var deps []string
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/proxyauth/proxyauth/testdata/footprint/oauth2only" {
			continue
		}
		deps = append(deps, p)
		if !allowedDeps.MatchString(p) {
			t.Errorf("the OAuth2-only program compiles %s; want only %s", p, allowedDeps)
		}
	}
	for _, want := range []string{"github.com/proxyauth/proxyauth/credential", "github.com/proxyauth/proxyauth/transport"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("the OAuth2-only program does not compile %s; the test no longer builds what it claims", want)
		}
	}
	t.Logf("non-standard packages compiled: %d: %s", len(deps), strings.Join(deps, " "))
}

func TestFootprintBinarySize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	size := func(prog string) int64 {
		bin := filepath.Join(dir, prog)
		goTool(t, ".", "build", "-o", bin, "./testdata/footprint/"+prog)
		fi, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	ours, theirs := size("oauth2only"), size("xoauth2")
	ratio := float64(ours) / float64(theirs)
	t.Logf("binary: proxyauth OAuth2-only %d bytes, x/oauth2 clientcredentials %d bytes: %.3f×", ours, theirs, ratio)
	if ratio > maxSizeRatio {
		t.Errorf("the OAuth2-only binary is %.3f× the x/oauth2 one (%d against %d bytes); want at most %.2f×", ratio, ours, theirs, maxSizeRatio)
	}
}

// testOnlyModules are modules that only tests, benchmarks or examples use.
var testOnlyModules = regexp.MustCompile(`github\.com/(go-oauth2/|tidwall/(buntdb|btree|grect|rtree|tinyqueue)|prometheus/)|gonum\.org/`)

func TestFootprintUserGoSum(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	user := t.TempDir()
	main, err := os.ReadFile("testdata/footprint/oauth2only/main.go")
	if err != nil {
		t.Fatal(err)
	}
	gomod := "module example.com/user\n\ngo 1.26.0\n\nrequire github.com/proxyauth/proxyauth v0.0.0\n\nreplace github.com/proxyauth/proxyauth => " + root + "\n"
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "main.go": main} {
		if err := os.WriteFile(filepath.Join(user, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goTool(t, user, "mod", "tidy")
	sum, err := os.ReadFile(filepath.Join(user, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sum)), "\n")
	for _, l := range lines {
		if testOnlyModules.MatchString(l) {
			t.Errorf("the user's go.sum names a test-only module: %s", l)
		}
	}
	t.Logf("the user's go.sum: %d lines", len(lines))
}
