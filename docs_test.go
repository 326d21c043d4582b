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
	files := docMarkdownFiles(t, ".")
	if !slices.Contains(files, "README.md") {
		t.Fatalf("found Markdown files %q; want README.md among them", files)
	}
	for _, p := range checkDocLinks(t, ".", files) {
		t.Error(p)
	}
}

// TestDocsCitedTestsExist checks that every Test, Fuzz and Example function
// a Markdown file names is defined in a _test.go file of the repository, so
// that a renamed test cannot leave a document pointing at nothing.
func TestDocsCitedTestsExist(t *testing.T) {
	files := docMarkdownFiles(t, ".")
	defined := docDefinedTests(t, ".")
	if !defined["TestDocsCitedTestsExist"] {
		t.Fatalf("found %d test functions, not this one: the walk of the repository is broken", len(defined))
	}
	for _, p := range checkDocCitedTests(t, ".", files, defined) {
		t.Error(p)
	}
}

// TestDocsBenchmarksKeepsHandWritten checks that BENCHMARKS.md has the
// markers by which scripts/bench.sh finds the hand-written sections it keeps
// when it writes the file anew.
func TestDocsBenchmarksKeepsHandWritten(t *testing.T) {
	script := docReadFile(t, filepath.Join("scripts", "bench.sh"))
	doc := docReadFile(t, "BENCHMARKS.md")
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
	docWrite(t, dir, "README.md", "# Title\n\n"+
		"See [docs](docs/a.md), [a heading](docs/a.md#whats-new--changed), [here](#title),\n"+
		"[the dir](docs), [a line](code.go#L2), [site](https://example.com/x.md),\n"+
		"[mail](mailto:a@example.com) and [ref].\n\n"+
		"[ref]: docs/a.md#second-1\n\n"+
		"Broken: [gone](missing.md), [no anchor](docs/a.md#nowhere), [self](#nothing),\n"+
		"[line](code.go#L9), [escape](../outside.md), [bad ref][bad].\n\n"+
		"[bad]: docs/b.md\n\n"+
		"```md\n[in a fence](fence.md)\n# Not a heading\n```\n\n"+
		"`[in a span](span.md)` and ``[two ticks `x`](span2.md)``.\n")
	docWrite(t, dir, "docs/a.md", "# What's new / changed\n\n## Second\n\n## Second\n\n"+
		"[back](../README.md#title) [up](../README.md#not-a-heading)\n")
	docWrite(t, dir, "code.go", "package x\n\nvar _ = 1\n")
	docWrite(t, dir, "node_modules/m/x.md", "[skipped](nowhere.md)\n")
	docWrite(t, dir, "testdata/x.md", "[skipped](nowhere.md)\n")

	files := docMarkdownFiles(t, dir)
	if want := []string{"README.md", "docs/a.md"}; !slices.Equal(files, want) {
		t.Fatalf("docMarkdownFiles = %q; want %q", files, want)
	}
	got := checkDocLinks(t, dir, files)
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
		t.Errorf("checkDocLinks reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDocsCheckerFindsUndefinedTests shows that the cited-test check fails
// on a name no test file defines, and ignores words that only look alike.
func TestDocsCheckerFindsUndefinedTests(t *testing.T) {
	dir := t.TempDir()
	docWrite(t, dir, "README.md", "TestThere and FuzzThere/sub, ExampleThere, `go test -run '^TestGone$'`.\n"+
		"Testing, Fuzzing, Examples, Example, TestdataDir are words; so is MyTestThing.\n"+
		"*FuzzGone*, Example_gone.\n")
	docWrite(t, dir, "x_test.go", "package x\n\nimport \"testing\"\n\n"+
		"func TestThere(t *testing.T) {}\nfunc FuzzThere(f *testing.F) {}\nfunc ExampleThere() {}\n"+
		"func (x) TestMethod() {}\n")
	docWrite(t, dir, "x.go", "package x\n\nfunc TestdataDir() {}\n\ntype x struct{}\n")
	docWrite(t, dir, "testdata/y_test.go", "package y\n\nfunc TestGone() {}\n")

	defined := docDefinedTests(t, dir)
	if want := []string{"ExampleThere", "FuzzThere", "TestThere"}; !slices.Equal(slices.Sorted(maps.Keys(defined)), want) {
		t.Fatalf("docDefinedTests = %v; want %q", defined, want)
	}
	got := checkDocCitedTests(t, dir, docMarkdownFiles(t, dir), defined)
	want := []string{
		`README.md:1: TestGone is not defined in any _test.go file`,
		`README.md:3: FuzzGone is not defined in any _test.go file`,
		`README.md:3: Example_gone is not defined in any _test.go file`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("checkDocCitedTests reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDocsAnchors compares mdSlug with the anchors GitHub gives such
// headings, written out by hand rather than computed.
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
		{"foo _italic_ bar and __init__", "foo-italic-bar-and-init"},
		{"foo_foo_bar", "foo_foo_bar"},
		{"`a.b` c", "ab-c"},
		{"1) not a list", "1-not-a-list"},
	}
	for _, tt := range tests {
		if got := mdSlug(tt.heading); got != tt.want {
			t.Errorf("mdSlug(%q) = %q; want %q", tt.heading, got, tt.want)
		}
	}
}

// docSkipDir reports whether a directory holds no files of the project's own.
func docSkipDir(name string) bool {
	return name == ".git" || name == "node_modules" || name == "testdata" || name == "vendor"
}

// docWalk calls each with the path, and the slash-separated path relative
// to root, of every file under root whose name ends in suffix, skipping
// directories that hold no files of the project's own.
func docWalk(t *testing.T, root, suffix string, each func(path, rel string) error) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && p != root && docSkipDir(d.Name()):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(d.Name(), suffix):
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return each(p, filepath.ToSlash(rel))
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
}

// docMarkdownFiles returns the slash-separated paths, relative to root and
// sorted, of the Markdown files under root.
func docMarkdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	docWalk(t, root, ".md", func(_, rel string) error {
		files = append(files, rel)
		return nil
	})
	slices.Sort(files)
	return files
}

// docDefinedTests returns the names of the top-level Test, Fuzz and Example
// functions in the _test.go files under root.
func docDefinedTests(t *testing.T, root string) map[string]bool {
	t.Helper()
	defined := map[string]bool{}
	fset := token.NewFileSet()
	docWalk(t, root, "_test.go", func(p, _ string) error {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && docCitedName.MatchString(fn.Name.Name) {
				defined[fn.Name.Name] = true
			}
		}
		return nil
	})
	return defined
}

// docCitedName matches the name of a test function as a document cites it:
// "TestFoo", "FuzzFoo", "ExampleFoo" or "Example_foo", not the words
// "Testing" or "Examples".
var docCitedName = regexp.MustCompile(`\b(?:Test[A-Z]\w*|Fuzz[A-Z]\w*|Example(?:[A-Z_]\w*)?)\b`)

// checkDocCitedTests returns one problem for each test name cited in files
// that defined does not hold.
func checkDocCitedTests(t *testing.T, root string, files []string, defined map[string]bool) []string {
	t.Helper()
	var problems []string
	for _, f := range files {
		for i, line := range strings.Split(docReadFile(t, filepath.Join(root, f)), "\n") {
			for _, name := range docCitedName.FindAllString(line, -1) {
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

// An mdLink is the target of a Markdown link and the line it is on.
type mdLink struct {
	target string
	line   int
}

var (
	mdInlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*(<[^>]*>|[^()\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	mdRefDef     = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)`)
	mdHTMLLink   = regexp.MustCompile(`(?i)<(?:a|img)\b[^>]*?\s(?:href|src)\s*=\s*"([^"]*)"`)
	mdATXHeading = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	mdHTMLAnchor = regexp.MustCompile(`(?i)<a\b[^>]*?\s(?:name|id)\s*=\s*"([^"]*)"`)
	mdScheme     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	mdLineAnchor = regexp.MustCompile(`^L(\d+)(?:-L(\d+))?$`)
)

// mdBlank replaces b[from:to] by spaces, newlines kept, so that offsets and
// line numbers stay those of the original.
func mdBlank(b []byte, from, to int) {
	for i := from; i < to; i++ {
		if b[i] != '\n' {
			b[i] = ' '
		}
	}
}

// mdWithoutFences returns src with its fenced code blocks blanked.
func mdWithoutFences(src string) string {
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
			mdBlank(b, off, off+len(line))
		case fence != "":
			if run != "" && run[0] == fence[0] && len(run) >= len(fence) && strings.TrimSpace(trimmed[len(run):]) == "" {
				fence = ""
			}
			mdBlank(b, off, off+len(line))
		}
		off += len(line)
	}
	return string(b)
}

// mdProse returns src with its fenced code blocks and code spans blanked.
func mdProse(src string) string {
	s := mdWithoutFences(src)
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
			if s[j] == '\n' && strings.TrimSpace(mdLineAt(s, j+1)) == "" {
				break // a mdBlank line ends the paragraph
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
		mdBlank(b, i, end+n)
		i = end + n
	}
	return string(b)
}

// mdLineAt returns the line of s that starts at i.
func mdLineAt(s string, i int) string {
	if i >= len(s) {
		return ""
	}
	line, _, _ := strings.Cut(s[i:], "\n")
	return line
}

// mdLinks returns the targets of the inline links, images, reference
// definitions and HTML links in src.
func mdLinks(src string) []mdLink {
	text := mdProse(src)
	var out []mdLink
	for _, re := range []*regexp.Regexp{mdInlineLink, mdRefDef, mdHTMLLink} {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			target := strings.TrimSuffix(strings.TrimPrefix(text[m[2]:m[3]], "<"), ">")
			out = append(out, mdLink{target: target, line: 1 + strings.Count(text[:m[0]], "\n")})
		}
	}
	slices.SortStableFunc(out, func(a, b mdLink) int { return a.line - b.line })
	return out
}

// mdAnchors returns the anchors of the headings in a Markdown file, as GitHub
// makes them, and of its HTML anchors.
func mdAnchors(src string) map[string]bool {
	set := map[string]bool{}
	seen := map[string]int{}
	text := mdWithoutFences(src)
	for _, line := range strings.Split(text, "\n") {
		if m := mdATXHeading.FindStringSubmatch(line); m != nil {
			s := mdSlug(m[1])
			// GitHub numbers repeated headings: x, x-1, x-2.
			if n := seen[s]; n > 0 {
				set[s+"-"+strconv.Itoa(n)] = true
			} else {
				set[s] = true
			}
			seen[s]++
		}
		for _, m := range mdHTMLAnchor.FindAllStringSubmatch(line, -1) {
			set[m[1]] = true
		}
	}
	return set
}

var (
	mdLinkText = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	mdHTMLTag  = regexp.MustCompile(`<[^>]+>`)
)

// mdSlug is GitHub's anchor for a heading: the text as rendered (link
// targets, tags, backticks and emphasis marks dropped), lowercased, every
// character that is not a letter, a digit, a mark, '-', '_' or a space
// removed, and each space made '-'. An underscore counts as an emphasis
// mark unless it stands between two letters or digits (CommonMark does not
// emphasise inside words); a lone underscore next to a space is taken for
// one too, which GitHub would keep.
func mdSlug(heading string) string {
	text := mdLinkText.ReplaceAllString(heading, "$1")
	text = mdHTMLTag.ReplaceAllString(text, "")
	rs := []rune(strings.ToLower(text))
	word := func(i int) bool {
		return i >= 0 && i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]))
	}
	var b strings.Builder
	for i, r := range rs {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '_':
			before, after := i, i
			for before > 0 && rs[before-1] == '_' {
				before--
			}
			for after < len(rs) && rs[after] == '_' {
				after++
			}
			if word(before-1) && word(after) {
				b.WriteRune(r)
			}
		case r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkDocLinks returns one problem for each relative link in files (paths
// relative to root) that leads to nothing.
func checkDocLinks(t *testing.T, root string, files []string) []string {
	t.Helper()
	anchorCache := map[string]map[string]bool{}
	anchorsOf := func(p string) map[string]bool {
		if a, ok := anchorCache[p]; ok {
			return a
		}
		a := mdAnchors(docReadFile(t, filepath.Join(root, filepath.FromSlash(p))))
		anchorCache[p] = a
		return a
	}
	var problems []string
	for _, f := range files {
		for _, l := range mdLinks(docReadFile(t, filepath.Join(root, filepath.FromSlash(f)))) {
			if msg := checkDocLink(root, f, l.target, anchorsOf); msg != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s", f, l.line, l.target, msg))
			}
		}
	}
	return problems
}

// checkDocLink says what is wrong with target, a link in the file from, or
// returns "" if it leads somewhere.
func checkDocLink(root, from, target string, anchorsOf func(string) map[string]bool) string {
	if mdScheme.MatchString(target) {
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
		m := mdLineAnchor.FindStringSubmatch(frag)
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

func docReadFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func docWrite(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
