package main

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/proxyauth/proxyauth/internal/sandbox"
)

// TestUsageErrors checks that every missing, malformed or clashing setting
// exits with status 2 and a message that names it, before any token
// request, and that the secret is not in the message.
func TestUsageErrors(t *testing.T) {
	idp := newIdP(t)
	base := sandboxEnv(idp)
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	up := []string{"serve", "--upstream", "http://127.0.0.1:9"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in stderr
	}{
		{"no command", base, nil, "Usage:"},
		{"unknown command", base, []string{"proxy"}, `unknown command "proxy"`},
		{"unknown flag", base, []string{"token", "--nope"}, "-nope"},
		{"argument", base, []string{"token", "extra"}, "token takes no arguments and got 1 after its flags"},
		{"a secret as an argument", base, []string{"serve", "--upstream", "http://127.0.0.1:9", idp.ClientSecret(), "x"}, "serve takes no arguments and got 2"},
		{"token url missing", with("PROXYAUTH_TOKEN_URL", ""), []string{"token"}, "--token-url / PROXYAUTH_TOKEN_URL is required"},
		{"client id missing", with("PROXYAUTH_CLIENT_ID", ""), []string{"token"}, "--client-id / PROXYAUTH_CLIENT_ID is required"},
		{"secret missing", with("PROXYAUTH_CLIENT_SECRET", ""), []string{"token"}, "PROXYAUTH_CLIENT_SECRET (in the environment), --private-key-file / PROXYAUTH_PRIVATE_KEY_FILE or --assertion-file / PROXYAUTH_ASSERTION_FILE is required"},
		{"secret on the command line", base, []string{"token", "--client-secret=" + idp.ClientSecret()}, "PROXYAUTH_CLIENT_SECRET only"},
		{"secret flag, two dashes apart", base, []string{"serve", "-client-secret", idp.ClientSecret()}, "PROXYAUTH_CLIENT_SECRET only"},
		{"token url not https", with("PROXYAUTH_TOKEN_URL", "http://login.example.com/token"), []string{"token"}, "--token-url / PROXYAUTH_TOKEN_URL: credential: OAuth2Config.TokenURL"},
		{"token url flag not https", base, []string{"token", "--token-url", "ftp://x/"}, "--token-url / PROXYAUTH_TOKEN_URL: "},
		{"credential unknown", with("PROXYAUTH_CREDENTIAL", "gcp"), []string{"token"}, `--credential / PROXYAUTH_CREDENTIAL is "gcp"`},
		{"azure with token url", with("PROXYAUTH_CREDENTIAL", "azure", "PROXYAUTH_CLIENT_SECRET", "", "PROXYAUTH_CLIENT_ID", "", "PROXYAUTH_SCOPE", "s"), []string{"token"}, "--token-url / PROXYAUTH_TOKEN_URL clashes with PROXYAUTH_CREDENTIAL=azure"},
		{"azure with client id", with("PROXYAUTH_CREDENTIAL", "azure", "PROXYAUTH_TOKEN_URL", "", "PROXYAUTH_CLIENT_SECRET", "", "PROXYAUTH_SCOPE", "s"), []string{"token"}, "--client-id / PROXYAUTH_CLIENT_ID clashes"},
		{"azure with secret", map[string]string{"PROXYAUTH_CREDENTIAL": "azure", "PROXYAUTH_CLIENT_SECRET": "x", "PROXYAUTH_SCOPE": "s"}, []string{"token"}, "PROXYAUTH_CLIENT_SECRET clashes"},
		{"azure with audience", map[string]string{"PROXYAUTH_SCOPE": "s", "PROXYAUTH_AUDIENCE": "a"}, []string{"token", "--credential", "azure"}, "--audience / PROXYAUTH_AUDIENCE clashes"},
		{"azure without scope", map[string]string{"PROXYAUTH_CREDENTIAL": "azure"}, []string{"token"}, "--scope / PROXYAUTH_SCOPE is required with PROXYAUTH_CREDENTIAL=azure"},
		{"header and json", base, []string{"token", "--header", "--json"}, "--header and --json clash"},
		{"no upstream", base, []string{"serve"}, "--upstream is required"},
		{"upstream relative", base, []string{"serve", "--upstream", "/v1"}, "--upstream \"/v1\" is not an absolute http or https URL"},
		{"upstream scheme", base, []string{"serve", "--upstream", "ws://127.0.0.1:9"}, "is not an absolute http or https URL"},
		{"upstream user info", base, []string{"serve", "--upstream", "https://u:p@gw.example.com"}, "--upstream must not contain user info"},
		{"upstream scheme, with a password", base, []string{"serve", "--upstream", "htps://alice:" + idp.ClientSecret() + "@gw.example.com/?api-key=" + idp.ClientSecret()}, `--upstream "htps://gw.example.com/" is not an absolute http or https URL`},
		{"upstream not parsing, with a password", base, []string{"serve", "--upstream", "https://alice:" + idp.ClientSecret() + "@gw.example.com/%zz"}, `--upstream does not parse: invalid URL escape "%zz"`},
		{"upstream plain http", base, []string{"serve", "--upstream", "http://gw.example.com"}, "--upstream http://gw.example.com is plain http"},
		{"listen malformed", base, append(up, "--listen", "4000"), `--listen "4000" is not host:port`},
		{"listen port", base, append(up, "--listen", "127.0.0.1:http"), "--listen \"127.0.0.1:http\": the port"},
		{"listen not loopback", base, append(up, "--listen", "0.0.0.0:0"), "--listen 0.0.0.0:0 is not a loopback address"},
		{"listen all interfaces", base, append(up, "--listen", ":0"), "--local-key-env is required"},
		{"local key unset", base, append(up, "--local-key-env", "MY_KEY"), "--local-key-env names MY_KEY, which is unset or empty"},
		{"local key empty", with("MY_KEY", ""), append(up, "--local-key-env", "MY_KEY"), "MY_KEY, which is unset or empty"},
		{"replay size", base, append(up, "--max-replay-body", "16MB"), `"16MB" is not a size`},
		{"replay negative", base, append(up, "--max-replay-body", "-1"), `"-1" is not a size`},
		{"shutdown timeout", base, append(up, "--shutdown-timeout", "-1s"), "--shutdown-timeout is -1s"},
		{"log format", base, append(up, "--log-format", "xml"), `--log-format "xml"`},
		{"log level", base, append(up, "--log-level", "loud"), `--log-level "loud"`},
		{"serve secret missing", with("PROXYAUTH_CLIENT_SECRET", ""), up, "PROXYAUTH_CLIENT_SECRET (in the environment), --private-key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCommand(t, tt.env, tt.args...)
			if r.code != exitUsage {
				t.Errorf("exit status %d; want %d\nstderr: %s", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
			if strings.Contains(r.stderr+r.stdout, idp.ClientSecret()) {
				t.Errorf("the output holds the client secret:\n%s%s", r.stdout, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q; want nothing", r.stdout)
			}
		})
	}
	if n := idp.Requests(); n != 0 {
		t.Errorf("the token endpoint got %d requests; want none before the settings are right", n)
	}
}

// TestFlagsWinOverEnvironment checks that a flag, when given, wins over its
// variable, and that the settings reach the token request: client ID,
// scope and audience as the server decodes them.
func TestFlagsWinOverEnvironment(t *testing.T) {
	idp := newIdP(t)
	var mu sync.Mutex
	var forms []map[string]string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, _, _ := r.BasicAuth()
		mu.Lock()
		forms = append(forms, map[string]string{"scope": r.PostForm.Get("scope"), "audience": r.PostForm.Get("audience"), "id": id})
		mu.Unlock()
		idp.ServeHTTP(w, r)
	}))
	defer rec.Close()
	wrong, err := sandbox.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"PROXYAUTH_TOKEN_URL":     "http://" + wrong + "/token",
		"PROXYAUTH_CLIENT_ID":     "wrong-client",
		"PROXYAUTH_CLIENT_SECRET": idp.ClientSecret(),
		"PROXYAUTH_SCOPE":         "env-scope",
		"PROXYAUTH_AUDIENCE":      "env-audience",
	}
	r := runCommand(t, env, "token", "--token-url", rec.URL+"/token", "--client-id", idp.ClientID(), "--scope", "flag-scope")
	if r.code != exitOK {
		t.Fatalf("exit status %d; stderr: %s", r.code, r.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forms) != 1 {
		t.Fatalf("token requests %d; want 1", len(forms))
	}
	want := map[string]string{"scope": "flag-scope", "audience": "env-audience", "id": idp.ClientID()}
	if !maps.Equal(forms[0], want) {
		t.Errorf("the token request had %v; want %v", forms[0], want)
	}
}

// TestHelpAndVersion checks --help of every command (exit 0, on stdout,
// naming every flag and variable) and --version.
func TestHelpAndVersion(t *testing.T) {
	common := []string{"-credential", "-token-url", "-client-id", "-scope", "-audience", "-private-key-file", "-key-id", "-assertion-file",
		"PROXYAUTH_CLIENT_SECRET", "PROXYAUTH_CREDENTIAL", "PROXYAUTH_TOKEN_URL", "PROXYAUTH_CLIENT_ID", "PROXYAUTH_SCOPE", "PROXYAUTH_AUDIENCE",
		"PROXYAUTH_PRIVATE_KEY_FILE", "PROXYAUTH_KEY_ID", "PROXYAUTH_ASSERTION_FILE"}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"proxyauth token", "proxyauth serve", "--version"}},
		{[]string{"help"}, []string{"proxyauth token"}},
		{[]string{"token", "--help"}, append([]string{"-header", "-json"}, common...)},
		{[]string{"token", "-h"}, []string{"-header"}},
		{[]string{"serve", "--help"}, append([]string{"-upstream", "-listen", "-local-key-env", "-max-replay-body",
			"-shutdown-timeout", "-allow-http", "-log-format", "-log-level", "/healthz", "/metrics", "16MiB", "127.0.0.1:4000"}, common...)},
	}
	for _, tt := range tests {
		r := runCommand(t, nil, tt.args...)
		if r.code != exitOK || r.stderr != "" {
			t.Errorf("%q: exit status %d, stderr %q; want 0 and nothing", tt.args, r.code, r.stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%q: the help does not mention %q:\n%s", tt.args, w, r.stdout)
			}
		}
	}
	r := runCommand(t, nil, "--version")
	// A test binary has no module version: the fallback shows.
	if r.code != exitOK || r.stdout != "proxyauth (devel)\n" {
		t.Errorf("--version: exit status %d, stdout %q; want 0 and %q", r.code, r.stdout, "proxyauth (devel)\n")
	}
}

// TestByteSize checks the size flag against sizes written out.
func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1": 1, "1024": 1024, "16MiB": 16 * 1024 * 1024, "1KiB": 1024, "2GiB": 2 * 1024 * 1024 * 1024, "5B": 5} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "x", "1.5MiB", "-1", "16MB", "1TiB", "99999999999GiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d; want an error", in, b)
		}
	}
	for b, want := range map[byteSize]string{16 << 20: "16MiB", 1000: "1000", 0: "0", 3 << 10: "3KiB"} {
		if got := b.String(); got != want {
			t.Errorf("byteSize(%d).String() = %q; want %q", int64(b), got, want)
		}
	}
}
