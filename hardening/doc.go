// Package hardening holds tests that attack proxyauth as a whole: a secret-leak audit and a soak under -race.
package hardening
