package credential_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxyauth/proxyauth/credential"
)

// TestAssertionFromFile: the file is read on every call, so that a
// rotated token is picked up; white space around it is trimmed; an empty,
// missing or oversized file is an error that names the path and shows
// nothing of the content.
func TestAssertionFromFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	write := func(content string) {
		t.Helper()
		// Kubernetes swaps a symlinked directory; a rename is the same
		// for a reader: the path names a new file.
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	get := credential.AssertionFromFile(path)
	ctx := context.Background()

	write("\n  eyJ.first.sig \r\n\t")
	if got, err := get(ctx); err != nil || got != "eyJ.first.sig" {
		t.Errorf("first read: got %q, %v; want %q, nil", got, err, "eyJ.first.sig")
	}
	write("eyJ.second.sig\n")
	if got, err := get(ctx); err != nil || got != "eyJ.second.sig" {
		t.Errorf("after rotation: got %q, %v; want %q, nil", got, err, "eyJ.second.sig")
	}
	// Written in place too, as a plain file that is overwritten.
	if err := os.WriteFile(path, []byte("eyJ.third.sig"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := get(ctx); err != nil || got != "eyJ.third.sig" {
		t.Errorf("after an overwrite: got %q, %v; want %q, nil", got, err, "eyJ.third.sig")
	}

	const secretish = "eyJ.secret-content.sig"
	for _, tt := range []struct {
		name    string
		content string // "" with missing: no file
		missing bool
		want    string
	}{
		{name: "empty", content: "", want: "is empty"},
		{name: "only white space", content: " \n\t\r\n ", want: "is empty"},
		{name: "missing", missing: true, want: "no such file or directory"},
		{name: "too big", content: secretish + strings.Repeat(" x", 40<<10), want: "has more than 65536 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if !tt.missing {
				if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := credential.AssertionFromFile(p)(ctx)
			if err == nil || got != "" {
				t.Fatalf("got %q, %v; want an error", got, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "credential: assertion file ") || !strings.Contains(msg, `"`+p+`"`) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q; want one that names %q and says %q", msg, p, tt.want)
			}
			if strings.Count(msg, p) != 1 {
				t.Errorf("error %q names the path %d times; want once", msg, strings.Count(msg, p))
			}
			if strings.Contains(msg, "secret-content") {
				t.Errorf("error %q shows the file's content", msg)
			}
			if tt.missing && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v: errors.Is(err, fs.ErrNotExist) = false; want true", err)
			}
		})
	}

	// A directory cannot be read as a file.
	if _, err := credential.AssertionFromFile(dir)(ctx); err == nil || !strings.Contains(err.Error(), `"`+dir+`"`) {
		t.Errorf("a directory: got error %v; want one naming it", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := get(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled context: got error %v; want context.Canceled", err)
	}
}
