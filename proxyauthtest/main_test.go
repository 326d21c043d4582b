package proxyauthtest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// httpmock answers a request whose context can end from two goroutines of
// its own, and held or delayed token requests wait in one: none may outlive
// a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
