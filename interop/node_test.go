package interop_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/proxyauth/proxyauth/internal/testutil"
)

// The oldest Node.js that interop/package.json's engines accepts. An older
// node fails inside the npm packages with errors that do not name the
// version, so the tests check it before they start node.
const minNodeMajor, minNodeMinor = 20, 19

// findNode runs `node --version` once for every test that needs node.
var findNode = sync.OnceValues(func() (string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	ok, err := nodeAtLeast(version, minNodeMajor, minNodeMinor)
	if err != nil {
		return "", fmt.Errorf("%s --version: %v", node, err)
	}
	if !ok {
		return "", fmt.Errorf("%s is Node.js %s", node, version)
	}
	return node, nil
})

// requireNode returns the node on PATH, or fails the test naming what to
// install if there is none or it is older than the npm packages support.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := findNode()
	if err != nil {
		t.Fatalf("the interop tests need Node.js %d.%d or newer on PATH (%v): install it from the distribution (apt-get install nodejs npm) if its version is recent enough, or from https://nodejs.org, then run `cd interop && npm ci` (make test runs it)", minNodeMajor, minNodeMinor, err)
	}
	return node
}

// nodeAtLeast reports whether version, as `node --version` prints it
// (v20.19.0), is major.minor or newer.
func nodeAtLeast(version string, major, minor int) (bool, error) {
	parts := strings.Split(strings.TrimPrefix(version, "v"), ".")
	if !strings.HasPrefix(version, "v") || len(parts) != 3 {
		return false, fmt.Errorf("%q is not a Node.js version (vMAJOR.MINOR.PATCH)", version)
	}
	var n [2]int
	for i := range n {
		v, err := strconv.Atoi(parts[i])
		if err != nil || v < 0 {
			return false, fmt.Errorf("%q is not a Node.js version (vMAJOR.MINOR.PATCH)", version)
		}
		n[i] = v
	}
	return n[0] > major || n[0] == major && n[1] >= minor, nil
}

// TestNodeAtLeast: the version check lets through 20.19 and every later
// release, and nothing before it.
func TestNodeAtLeast(t *testing.T) {
	for _, tt := range []struct {
		version string
		ok      bool
		bad     bool
	}{
		{version: "v20.19.0", ok: true},
		{version: "v20.20.2", ok: true},
		{version: "v22.0.0", ok: true},
		{version: "v100.0.0", ok: true},
		{version: "v20.18.3"},
		{version: "v18.20.8"},
		{version: "v19.99.0"},
		{version: "v0.10.48"},
		{version: "20.19.0", bad: true},
		{version: "v20.19", bad: true},
		{version: "v20.x.0", bad: true},
		{version: "", bad: true},
	} {
		ok, err := nodeAtLeast(tt.version, 20, 19)
		if ok != tt.ok || (err != nil) != tt.bad {
			t.Errorf("nodeAtLeast(%q, 20, 19) = %v, %v; want %v, and an error %v", tt.version, ok, err, tt.ok, tt.bad)
		}
	}
}
