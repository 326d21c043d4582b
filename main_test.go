package proxyauth_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: a transport
// that leaked a background refresh or a response body would show up here.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
