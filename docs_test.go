package proxyauth_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// The Markdown files are the README, docs/, BENCHMARKS.md and CONTRIBUTING.md.
// These tests keep them honest about the repository: every relative link
// leads to a file, directory or heading that exists, and every test a
// document cites by name is defined. They read the files with a small
// scanner of their own (no Markdown library), which knows the parts of
// CommonMark these files use: fenced code blocks, code spans, inline links,
// reference definitions, ATX headings and HTML anchors.

// TestDocsLinks checks every relative link of every Markdown file in the
// repository.
func TestDocsLinks(t *testing.T) {
	files := markdownFiles(t, ".")
	if !slices.Contains(files, "README.md") {
		t.Fatalf("found Markdown files %q; want README.md among them", files)
	}
	for _, p := range checkLinks(t, ".", files) {
		t.Error(p)
	}
}

// TestDocsCitedTestsExist checks that every Test, Fuzz and Example function
// a Markdown file names is defined in a _test.go file of the repository, so
// that a renamed test cannot leave a document pointing at nothing.
func TestDocsCitedTestsExist(t *testing.T) {
	files := markdownFiles(t, ".")
	defined := definedTests(t, ".")
	if !defined["TestDocsCitedTestsExist"] {
		t.Fatalf("found %d test functions, not this one: the walk of the repository is broken", len(defined))
	}
	for _, p := range checkCitedTests(t, ".", files, defined) {
		t.Error(p)
	}
}

// TestDocsBenchmarksKeepsHandWritten checks that BENCHMARKS.md has the
// markers by which scripts/bench.sh finds the hand-written sections it keeps
// when it writes the file anew.
func TestDocsBenchmarksKeepsHandWritten(t *testing.T) {
	script := readFile(t, filepath.Join("scripts", "bench.sh"))
	doc := readFile(t, "BENCHMARKS.md")
	for _, v := range []string{"kept_begin", "kept_end"} {
		m := regexp.MustCompile(`(?m)^` + v + `='([^']+)'$`).FindStringSubmatch(script)
		if m == nil {
			t.Fatalf("scripts/bench.sh sets no %s='...'", v)
		}
		if n := strings.Count("\n"+doc+"\n", "\n"+m[1]+"\n"); n != 1 {
			t.Errorf("BENCHMARKS.md has the line %q %d times; want once", m[1], n)
		}
	}
}

// TestDocsCheckerFindsBrokenLinks shows that the link check fails on broken
// links and stays quiet on what is not a link.
func TestDocsCheckerFindsBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "README.md", "# Title\n\n"+
		"See [docs](docs/a.md), [a heading](docs/a.md#whats-new--changed), [here](#title),\n"+
		"[the dir](docs), [a line](code.go#L2), [site](https://example.com/x.md),\n"+
		"[mail](mailto:a@example.com) and [ref].\n\n"+
		"[ref]: docs/a.md#second-1\n\n"+
		"Broken: [gone](missing.md), [no anchor](docs/a.md#nowhere), [self](#nothing),\n"+
		"[line](code.go#L9), [escape](../outside.md), [bad ref][bad].\n\n"+
		"[bad]: docs/b.md\n\n"+
		"```md\n[in a fence](fence.md)\n# Not a heading\n```\n\n"+
		"`[in a span](span.md)` and ``[two ticks `x`](span2.md)``.\n")
	write(t, dir, "docs/a.md", "# What's new / changed\n\n## Second\n\n## Second\n\n"+
		"[back](../README.md#title) [up](../README.md#not-a-heading)\n")
	write(t, dir, "code.go", "package x\n\nvar _ = 1\n")
	write(t, dir, "node_modules/m/x.md", "[skipped](nowhere.md)\n")
	write(t, dir, "testdata/x.md", "[skipped](nowhere.md)\n")

	files := markdownFiles(t, dir)
	if want := []string{"README.md", "docs/a.md"}; !slices.Equal(files, want) {
		t.Fatalf("markdownFiles = %q; want %q", files, want)
	}
	got := checkLinks(t, dir, files)
	want := []string{
		`README.md:9: link "missing.md": missing.md does not exist`,
		`README.md:9: link "docs/a.md#nowhere": docs/a.md has no heading with anchor "nowhere"`,
		`README.md:9: link "#nothing": README.md has no heading with anchor "nothing"`,
		`README.md:10: link "code.go#L9": code.go has 3 lines, no line 9`,
		`README.md:10: link "../outside.md": leads out of the repository`,
		`README.md:12: link "docs/b.md": docs/b.md does not exist`,
		`docs/a.md:7: link "../README.md#not-a-heading": README.md has no heading with anchor "not-a-heading"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("checkLinks reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDocsCheckerFindsUndefinedTests shows that the cited-test check fails
// on a name no test file defines, and ignores words that only look alike.
func TestDocsCheckerFindsUndefinedTests(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "README.md", "TestThere and FuzzThere/sub, ExampleThere, `go test -run '^TestGone$'`.\n"+
		"Testing, Fuzzing, Examples, Example, TestdataDir are words; so is MyTestThing.\n"+
		"*FuzzGone*, Example_gone.\n")
	write(t, dir, "x_test.go", "package x\n\nimport \"testing\"\n\n"+
		"func TestThere(t *testing.T) {}\nfunc FuzzThere(f *testing.F) {}\nfunc ExampleThere() {}\n"+
		"func (x) TestMethod() {}\n")
	write(t, dir, "x.go", "package x\n\nfunc TestdataDir() {}\n\ntype x struct{}\n")
	write(t, dir, "testdata/y_test.go", "package y\n\nfunc TestGone() {}\n")

	defined := definedTests(t, dir)
	if want := []string{"ExampleThere", "FuzzThere", "TestThere"}; !slices.Equal(slices.Sorted(maps.Keys(defined)), want) {
		t.Fatalf("definedTests = %v; want %q", defined, want)
	}
	got := checkCitedTests(t, dir, markdownFiles(t, dir), defined)
	want := []string{
		`README.md:1: TestGone is not defined in any _test.go file`,
		`README.md:3: FuzzGone is not defined in any _test.go file`,
		`README.md:3: Example_gone is not defined in any _test.go file`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("checkCitedTests reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDocsAnchors compares the heading anchors with the ones GitHub makes
// for the same headings (taken from GitHub's rendering, not computed).
func TestDocsAnchors(t *testing.T) {
	tests := []struct {
		heading string
		want    string
	}{
		{"How the token cache behaves", "how-the-token-cache-behaves"},
		{"What `make demo` shows", "what-make-demo-shows"},
		{"Azure AD / Microsoft Entra ID with azidentity", "azure-ad--microsoft-entra-id-with-azidentity"},
		{"Okta, Auth0, Keycloak, Entra: OAuth2 client credentials", "okta-auth0-keycloak-entra-oauth2-client-credentials"},
		{"openai-go (`github.com/openai/openai-go/v3`)", "openai-go-githubcomopenaiopenai-gov3"},
		{"Rollover with 35 s tokens (LONG=1): 64 workers, 2 token lifetimes", "rollover-with-35-s-tokens-long1-64-workers-2-token-lifetimes"},
		{"snake_case and **bold** and [a link](x.md)", "snake_case-and-bold-and-a-link"},
		{"Größe × 2 …", "größe--2-"},
	}
	for _, tt := range tests {
		if got := slug(tt.heading); got != tt.want {
			t.Errorf("slug(%q) = %q; want %q", tt.heading, got, tt.want)
		}
	}
}

// skipDir reports whether a directory holds no files of the project's own.
func skipDir(name string) bool {
	return name == ".git" || name == "node_modules" || name == "testdata" || name == "vendor"
}

// markdownFiles returns the slash-separated paths, relative to root and
// sorted, of the Markdown files under root.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	slices.Sort(files)
	return files
}

// definedTests returns the names of the top-level Test, Fuzz and Example
// functions in the _test.go files under root.
func definedTests(t *testing.T, root string) map[string]bool {
	t.Helper()
	defined := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && citedName.MatchString(fn.Name.Name) {
				defined[fn.Name.Name] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return defined
}

// citedName matches the name of a test function as a document cites it:
// "TestFoo", "FuzzFoo", "ExampleFoo" or "Example_foo", not the words
// "Testing" or "Examples".
var citedName = regexp.MustCompile(`\b(?:Test[A-Z]\w*|Fuzz[A-Z]\w*|Example(?:[A-Z_]\w*)?)\b`)

// checkCitedTests returns one problem for each test name cited in files
// that defined does not hold.
func checkCitedTests(t *testing.T, root string, files []string, defined map[string]bool) []string {
	t.Helper()
	var problems []string
	for _, f := range files {
		for i, line := range strings.Split(readFile(t, filepath.Join(root, f)), "\n") {
			for _, name := range citedName.FindAllString(line, -1) {
				if name == "Example" {
					continue // the word, not a function
				}
				if !defined[name] {
					problems = append(problems, fmt.Sprintf("%s:%d: %s is not defined in any _test.go file", f, i+1, name))
				}
			}
		}
	}
	return problems
}

// A link is the target of a Markdown link and the line it is on.
type link struct {
	target string
	line   int
}

var (
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*(<[^>]*>|[^()\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	refDef     = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)`)
	htmlLink   = regexp.MustCompile(`(?i)<(?:a|img)\b[^>]*?\s(?:href|src)\s*=\s*"([^"]*)"`)
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	htmlAnchor = regexp.MustCompile(`(?i)<a\b[^>]*?\s(?:name|id)\s*=\s*"([^"]*)"`)
	scheme     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	lineAnchor = regexp.MustCompile(`^L(\d+)(?:-L(\d+))?$`)
)

// blank replaces b[from:to] by spaces, newlines kept, so that offsets and
// line numbers stay those of the original.
func blank(b []byte, from, to int) {
	for i := from; i < to; i++ {
		if b[i] != '\n' {
			b[i] = ' '
		}
	}
}

// withoutFences returns src with its fenced code blocks blanked.
func withoutFences(src string) string {
	b := []byte(src)
	// Fenced code blocks: a fence of three or more ` or ~, closed by a
	// fence of the same character at least as long.
	var fence string
	off := 0
	for _, line := range strings.SplitAfter(src, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		ticks := len(trimmed) - len(strings.TrimLeft(trimmed, "`"))
		tildes := len(trimmed) - len(strings.TrimLeft(trimmed, "~"))
		run := ""
		if len(line)-len(trimmed) <= 3 {
			if ticks >= 3 {
				run = strings.Repeat("`", ticks)
			} else if tildes >= 3 {
				run = strings.Repeat("~", tildes)
			}
		}
		switch {
		case fence == "" && run != "":
			fence = run
			blank(b, off, off+len(line))
		case fence != "":
			if run != "" && run[0] == fence[0] && len(run) >= len(fence) && strings.TrimSpace(trimmed[len(run):]) == "" {
				fence = ""
			}
			blank(b, off, off+len(line))
		}
		off += len(line)
	}
	return string(b)
}

// prose returns src with its fenced code blocks and code spans blanked.
func prose(src string) string {
	s := withoutFences(src)
	b := []byte(s)
	// Code spans: a run of n backticks up to the next run of exactly n,
	// within one paragraph.
	for i := 0; i < len(s); {
		if s[i] != '`' {
			i++
			continue
		}
		n := 1
		for i+n < len(s) && s[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(s); {
			if s[j] == '\n' && strings.TrimSpace(lineAt(s, j+1)) == "" {
				break // a blank line ends the paragraph
			}
			if s[j] != '`' {
				j++
				continue
			}
			m := 1
			for j+m < len(s) && s[j+m] == '`' {
				m++
			}
			if m == n {
				end = j
				break
			}
			j += m
		}
		if end < 0 {
			i += n // a lone run is literal backticks
			continue
		}
		blank(b, i, end+n)
		i = end + n
	}
	return string(b)
}

// lineAt returns the line of s that starts at i.
func lineAt(s string, i int) string {
	if i >= len(s) {
		return ""
	}
	line, _, _ := strings.Cut(s[i:], "\n")
	return line
}

// links returns the targets of the inline links, images, reference
// definitions and HTML links in src.
func links(src string) []link {
	text := prose(src)
	var out []link
	for _, re := range []*regexp.Regexp{inlineLink, refDef, htmlLink} {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			target := strings.TrimSuffix(strings.TrimPrefix(text[m[2]:m[3]], "<"), ">")
			out = append(out, link{target: target, line: 1 + strings.Count(text[:m[0]], "\n")})
		}
	}
	slices.SortStableFunc(out, func(a, b link) int { return a.line - b.line })
	return out
}

// anchors returns the anchors of the headings in a Markdown file, as GitHub
// makes them, and of its HTML anchors.
func anchors(src string) map[string]bool {
	set := map[string]bool{}
	seen := map[string]int{}
	text := withoutFences(src)
	for _, line := range strings.Split(text, "\n") {
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			s := slug(m[1])
			// GitHub numbers repeated headings: x, x-1, x-2.
			if n := seen[s]; n > 0 {
				set[s+"-"+strconv.Itoa(n)] = true
			} else {
				set[s] = true
			}
			seen[s]++
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			set[m[1]] = true
		}
	}
	return set
}

var (
	linkText = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag  = regexp.MustCompile(`<[^>]+>`)
)

// slug is GitHub's anchor for a heading: the text as rendered (link
// targets, tags, backticks and emphasis stars dropped), lowercased, every
// character that is not a letter, a digit, a mark, '-', '_' or a space
// removed, and each space made '-'.
func slug(heading string) string {
	text := linkText.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkLinks returns one problem for each relative link in files (paths
// relative to root) that leads to nothing.
func checkLinks(t *testing.T, root string, files []string) []string {
	t.Helper()
	anchorCache := map[string]map[string]bool{}
	anchorsOf := func(p string) map[string]bool {
		if a, ok := anchorCache[p]; ok {
			return a
		}
		a := anchors(readFile(t, filepath.Join(root, filepath.FromSlash(p))))
		anchorCache[p] = a
		return a
	}
	var problems []string
	for _, f := range files {
		for _, l := range links(readFile(t, filepath.Join(root, filepath.FromSlash(f)))) {
			if msg := checkLink(root, f, l.target, anchorsOf); msg != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s", f, l.line, l.target, msg))
			}
		}
	}
	return problems
}

// checkLink says what is wrong with target, a link in the file from, or
// returns "" if it leads somewhere.
func checkLink(root, from, target string, anchorsOf func(string) map[string]bool) string {
	if scheme.MatchString(target) {
		return "" // http, https, mailto: not in the repository
	}
	rawPath, frag, _ := strings.Cut(target, "#")
	rawPath, _, _ = strings.Cut(rawPath, "?")
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return fmt.Sprintf("the path does not unescape: %v", err)
	}
	if frag, err = url.PathUnescape(frag); err != nil {
		return fmt.Sprintf("the fragment does not unescape: %v", err)
	}
	switch {
	case p == "":
		p = from
	case strings.HasPrefix(p, "/"):
		p = path.Clean(strings.TrimPrefix(p, "/")) // GitHub: the repository's root
	default:
		p = path.Join(path.Dir(from), p)
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "leads out of the repository"
	}
	info, err := os.Stat(filepath.Join(root, filepath.FromSlash(p)))
	if err != nil {
		return p + " does not exist"
	}
	if frag == "" {
		return ""
	}
	if info.IsDir() {
		return fmt.Sprintf("%s is a directory, which has no anchor %q", p, frag)
	}
	if !strings.HasSuffix(p, ".md") {
		m := lineAnchor.FindStringSubmatch(frag)
		if m == nil {
			return fmt.Sprintf("%s is not Markdown; its only anchors are lines (#L12, #L12-L20)", p)
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			return err.Error()
		}
		lines := strings.Count(strings.TrimSuffix(string(data), "\n"), "\n") + 1
		for _, s := range m[1:] {
			if n, _ := strconv.Atoi(s); s != "" && (n < 1 || n > lines) {
				return fmt.Sprintf("%s has %d lines, no line %d", p, lines, n)
			}
		}
		return ""
	}
	if !anchorsOf(p)[frag] {
		return fmt.Sprintf("%s has no heading with anchor %q", p, frag)
	}
	return ""
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
