package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/sandbox"
)

// OverheadConfig configures [Overhead].
type OverheadConfig struct {
	Binary   string        // the proxyauth command, from [BuildCommand]
	Workers  int           // requests in flight at once, each worker sending back to back
	Duration time.Duration // of each measured run
	Warmup   time.Duration // of the unmeasured run before each measured one
}

// DefaultOverhead is what `make bench` runs.
var DefaultOverhead = OverheadConfig{Workers: 16, Duration: 5 * time.Second, Warmup: time.Second}

// OverheadRun is one path, direct or through `proxyauth serve`, for one
// kind of request.
type OverheadRun struct {
	Requests int
	Failed   int // an error, a status other than 200, or an answer cut short
	PerSec   float64
	P50, P99 time.Duration // latency to the last byte of the answer
	Pressure float64       // CPU pressure share during the run; -1: unknown
}

// OverheadResult compares the two paths for each kind of request.
type OverheadResult struct {
	Kind            string // "chat completion", "streamed chat completion"
	Direct, Through OverheadRun
}

// overheadKinds are the requests measured: whether the answer streams,
// and how long the gateway takes before it answers.
var overheadKinds = []struct {
	name    string
	stream  bool
	latency time.Duration
}{
	{"chat completion", false, 0},
	{"streamed chat completion (3 chunks)", true, 0},
	{"chat completion, the gateway takes 20 ms", false, 20 * time.Millisecond},
}

// BuildCommand builds cmd/proxyauth of the proxyauth module this module
// uses (the repository, through the replace directive) into dir.
func BuildCommand(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/proxyauth/proxyauth").Output()
	if err != nil {
		return "", fmt.Errorf("finding the proxyauth module: %w", err)
	}
	bin := filepath.Join(dir, "proxyauth")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/proxyauth")
	build.Dir = strings.TrimSpace(string(out))
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/proxyauth: %w\n%s", err, b)
	}
	return bin, nil
}

// Overhead measures what going through `proxyauth serve` costs against
// calling the gateway directly: cfg.Workers workers send requests back to
// back to the sandbox's OpenAI-compatible gateway, which answers at once,
// first directly with a valid token, then through the command with a
// dummy key, for cfg.Duration each. The gateway does no work, so the
// difference is the extra hop at its largest relative to a real call.
func Overhead(ctx context.Context, cfg OverheadConfig) ([]OverheadResult, error) {
	idp := sandbox.NewTokenServer(sandbox.TokenServerConfig{})
	defer idp.Close()
	cred, err := credential.NewOAuth2(credential.OAuth2Config{ClientID: idp.ClientID(), ClientSecret: idp.ClientSecret(), TokenURL: idp.URL})
	if err != nil {
		return nil, err
	}
	tok, err := cred.GetToken(ctx, "")
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxConnsPerHost: cfg.Workers, MaxIdleConnsPerHost: cfg.Workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	var res []OverheadResult
	for _, k := range overheadKinds {
		r, err := overheadKind(ctx, cfg, client, idp, tok.Token, k.stream, k.latency)
		if err != nil {
			return nil, err
		}
		r.Kind = k.name
		res = append(res, r)
	}
	return res, nil
}

// overheadKind measures one kind of request on both paths, against a
// gateway of its own.
func overheadKind(ctx context.Context, cfg OverheadConfig, client *http.Client, idp *sandbox.TokenServer, token string,
	stream bool, latency time.Duration) (OverheadResult, error) {
	var r OverheadResult
	llm := sandbox.NewProxy(idp, sandbox.ProxyConfig{DiscardSeen: true, Latency: latency})
	defer llm.Close()
	srv, err := startServe(ctx, cfg.Binary, llm.Root, idp)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	direct := target{url: llm.URL, auth: "Bearer " + token}
	through := target{url: srv.url + "/v1", auth: "Bearer unused-key"}
	for _, side := range []struct {
		t   target
		run *OverheadRun
	}{{direct, &r.Direct}, {through, &r.Through}} {
		if _, err := load(ctx, client, side.t, stream, cfg.Workers, cfg.Warmup); err != nil {
			return r, err
		}
		if *side.run, err = load(ctx, client, side.t, stream, cfg.Workers, cfg.Duration); err != nil {
			return r, err
		}
	}
	return r, srv.stop()
}

// target is where requests go and the Authorization they carry.
type target struct{ url, auth string }

// load keeps workers sending requests to t for d.
func load(ctx context.Context, client *http.Client, t target, stream bool, workers int, d time.Duration) (OverheadRun, error) {
	body := chatBody
	if stream {
		body = strings.Replace(chatBody, `"messages"`, `"stream":true,"messages"`, 1)
	}
	pressure := startCPUPressure()
	start := time.Now()
	deadline := start.Add(d)
	lat := make([][]time.Duration, workers)
	failed := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if !once(ctx, client, t, body, stream) {
					failed[w]++
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	r := OverheadRun{Pressure: pressure.share()}
	for w := range workers {
		all = append(all, lat[w]...)
		r.Failed += failed[w]
	}
	r.Requests = len(all) + r.Failed
	r.PerSec = float64(len(all)) / elapsed.Seconds()
	r.P50, r.P99, _ = percentiles(all)
	return r, ctx.Err()
}

// once sends one request and reads its whole answer; it reports whether
// the answer was a whole 200.
func once(ctx context.Context, client *http.Client, t target, body string, stream bool) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/chat/completions", strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", t.auth)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	if stream {
		return strings.HasSuffix(string(b), "data: [DONE]\n\n")
	}
	return json.Valid(b)
}

// served is a running `proxyauth serve`.
type served struct {
	url    string
	cmd    *exec.Cmd
	exited chan error
	done   bool
}

// startServe runs bin as `proxyauth serve` in front of upstream, with the
// default settings, getting its tokens from idp.
func startServe(ctx context.Context, bin, upstream string, idp *sandbox.TokenServer) (*served, error) {
	cmd := exec.CommandContext(ctx, bin, "serve", "--upstream", upstream, "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(),
		"PROXYAUTH_TOKEN_URL="+idp.URL, "PROXYAUTH_CLIENT_ID="+idp.ClientID(), "PROXYAUTH_CLIENT_SECRET="+idp.ClientSecret())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &served{cmd: cmd, exited: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		// The access log goes on being read, so that the command never
		// blocks on a full pipe.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Event, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Event == "listening" {
				addr <- rec.Addr
			}
		}
		s.exited <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
		return s, nil
	case err := <-s.exited:
		s.done = true
		return nil, fmt.Errorf("proxyauth serve exited before listening: %v", err)
	case <-time.After(time.Minute):
		_ = s.stop()
		return nil, errors.New("proxyauth serve did not listen within a minute")
	}
}

// stop ends the command with SIGTERM, as a service manager does.
func (s *served) stop() error {
	if s.done {
		return nil
	}
	s.done = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		return err
	case <-time.After(time.Minute):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("proxyauth serve did not exit within a minute of SIGTERM: %v", <-s.exited)
	}
}

// WriteOverhead writes the overhead table.
func WriteOverhead(w io.Writer, cfg OverheadConfig, rs []OverheadResult) {
	fmt.Fprintf(w, "%d workers send requests back to back for %v to the sandbox's OpenAI-compatible gateway, "+
		"first directly with a valid token, then through `proxyauth serve` (built from this tree, default settings: "+
		"bodies read for replay, an access log line per request) with a dummy key; each after a %v warm-up. "+
		"Where the gateway answers at once, the figures are the extra hop at its largest relative to a call; "+
		"a real LLM call takes hundreds of milliseconds, closer to the last row. Load generator, command and gateway share the machine's %s. "+
		"Latency is to the last byte of the answer.\n\n",
		cfg.Workers, cfg.Duration, cfg.Warmup, coresNote())
	fmt.Fprintln(w, "| request | path | requests/s | p50 | p99 | failed | CPU pressure |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		for _, p := range []struct {
			name string
			run  OverheadRun
		}{{"direct", r.Direct}, {"through `proxyauth serve`", r.Through}} {
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %d | %s |\n",
				r.Kind, p.name, p.run.PerSec, ms(p.run.P50), ms(p.run.P99), p.run.Failed, percent(p.run.Pressure))
		}
		fmt.Fprintf(w, "| %s | **serve / direct** | **%s** | **%s** (%s) | **%s** (%s) | | |\n",
			r.Kind, ratio(r.Through.PerSec, r.Direct.PerSec),
			ratio(float64(r.Through.P50), float64(r.Direct.P50)), added(r.Through.P50-r.Direct.P50),
			ratio(float64(r.Through.P99), float64(r.Direct.P99)), added(r.Through.P99-r.Direct.P99))
	}
	fmt.Fprintln(w)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f ×", a/b)
}

func coresNote() string { return fmt.Sprintf("%d CPUs", runtime.NumCPU()) }

// added is a difference of latencies with its sign.
func added(d time.Duration) string {
	if d < 0 {
		return "−" + ms(-d)
	}
	return "+" + ms(d)
}
