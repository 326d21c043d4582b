package proxyauthtest_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/proxyauth/proxyauth/credential"
	"github.com/proxyauth/proxyauth/internal/testutil"
	"github.com/proxyauth/proxyauth/proxyauthtest"
	"github.com/proxyauth/proxyauth/transport"
)

func TestScriptInOrder(t *testing.T) {
	errDown := errors.New("down")
	expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []proxyauthtest.Step{
		{Token: credential.AccessToken{Token: "t1", ExpiresOn: expires}},
		{Err: errDown},
		{Token: credential.AccessToken{Token: "t2", ExpiresOn: expires}, Err: errDown},
		{Token: credential.AccessToken{Token: "t3"}},
	}
	s := proxyauthtest.NewScript(steps...)
	steps[0].Token.Token = "changed" // NewScript copied the steps
	tests := []struct {
		want    credential.AccessToken
		wantErr error
		msg     string
	}{
		{want: credential.AccessToken{Token: "t1", ExpiresOn: expires}},
		{wantErr: errDown},
		{wantErr: errDown},
		{want: credential.AccessToken{Token: "t3"}},
		{wantErr: proxyauthtest.ErrScriptEnded, msg: "proxyauthtest: script ended: call 5 of a script of 4 steps"},
		{wantErr: proxyauthtest.ErrScriptEnded, msg: "proxyauthtest: script ended: call 6 of a script of 4 steps"},
	}
	for i, tt := range tests {
		tok, err := s.GetToken(context.Background(), "scope "+strconv.Itoa(i))
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Fatalf("call %d: err %v; want %v", i+1, err, tt.wantErr)
		}
		if tok.Token != tt.want.Token || !tok.ExpiresOn.Equal(tt.want.ExpiresOn) || !tok.RefreshOn.IsZero() {
			t.Errorf("call %d: %v; want %v", i+1, tok, tt.want)
		}
		if tt.msg != "" && err.Error() != tt.msg {
			t.Errorf("call %d: %q; want %q", i+1, err, tt.msg)
		}
		if s.Calls() != i+1 {
			t.Errorf("Calls() = %d after %d calls", s.Calls(), i+1)
		}
	}
}

func TestScriptEndedContext(t *testing.T) {
	s := proxyauthtest.NewScript(proxyauthtest.Step{Token: credential.AccessToken{Token: "t1"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.GetToken(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v; want context.Canceled", err)
	}
	tok, err := s.GetToken(context.Background(), "")
	if err != nil || tok.Token != "t1" {
		t.Errorf("after a cancelled call: %v, %v; want the first step", tok, err)
	}
	if s.Calls() != 2 {
		t.Errorf("Calls() = %d; want 2", s.Calls())
	}
}

func TestScriptZeroValue(t *testing.T) {
	var s proxyauthtest.Script
	if _, err := s.GetToken(context.Background(), ""); !errors.Is(err, proxyauthtest.ErrScriptEnded) {
		t.Errorf("err %v; want ErrScriptEnded", err)
	}
	if _, err := proxyauthtest.NewScript().GetToken(context.Background(), ""); !errors.Is(err, proxyauthtest.ErrScriptEnded) {
		t.Errorf("err %v; want ErrScriptEnded", err)
	}
}

// TestScriptConcurrent releases all callers at once: each step goes to
// exactly one of them, and the rest hear that the script ended.
func TestScriptConcurrent(t *testing.T) {
	const steps, callers = 64, 96
	var script []proxyauthtest.Step
	for i := range steps {
		script = append(script, proxyauthtest.Step{Token: credential.AccessToken{Token: "t" + strconv.Itoa(i)}})
	}
	s := proxyauthtest.NewScript(script...)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	got := make([]result, callers)
	for i := range callers {
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-start
			tok, err := s.GetToken(context.Background(), "")
			got[i] = result{tok, err}
		})
	}
	testutil.Wait(t, &ready, "the callers to start")
	close(start)
	testutil.Wait(t, &done, "the callers to return")
	seen := map[string]int{}
	ended := 0
	for _, r := range got {
		switch {
		case errors.Is(r.err, proxyauthtest.ErrScriptEnded):
			ended++
		case r.err != nil:
			t.Fatal(r.err)
		default:
			seen[r.tok.Token]++
		}
	}
	if len(seen) != steps || ended != callers-steps || s.Calls() != callers {
		t.Fatalf("%d distinct tokens, %d ended, %d calls; want %d, %d, %d", len(seen), ended, s.Calls(), steps, callers-steps, callers)
	}
	for tok, n := range seen {
		if n != 1 {
			t.Errorf("%s handed out %d times", tok, n)
		}
	}
}

// TestScriptDrivesTransport: the transport's 401 resend takes the script's
// next token, and a failing step reaches the caller as the cause.
func TestScriptDrivesTransport(t *testing.T) {
	fake := proxyauthtest.New(nil)
	good, revoked := issue(t, fake), issue(t, fake)
	fake.IdP.Revoke(revoked)
	errDown := errors.New("identity provider down")
	s := proxyauthtest.NewScript(
		proxyauthtest.Step{Token: credential.AccessToken{Token: revoked}},
		proxyauthtest.Step{Token: credential.AccessToken{Token: good}},
	)
	client := transport.Wrap(fake.Client(), s, "llm", nil)
	resp, err := client.Get(proxyauthtest.BaseURL + "/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || s.Calls() != 2 || fake.LLM.Rejected() != 1 || fake.LLM.Accepted() != 1 {
		t.Errorf("status %d, %d calls, %d rejected, %d accepted; want 200 after one 401 and a second token",
			resp.StatusCode, s.Calls(), fake.LLM.Rejected(), fake.LLM.Accepted())
	}

	s = proxyauthtest.NewScript(proxyauthtest.Step{Err: errDown})
	client = transport.Wrap(fake.Client(), s, "llm", nil)
	_, err = client.Get(proxyauthtest.BaseURL + "/models")
	if !errors.Is(err, errDown) {
		t.Errorf("err %v; want one wrapping the scripted error", err)
	}
	if fake.LLM.Requests() != 2 {
		t.Errorf("the upstream saw %d requests; want none more without a token", fake.LLM.Requests()-2)
	}
}
