package interop_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind, such as a
// connection to a server that was not closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
