package azuread

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind, such as a
// background refresh of a transport under test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
