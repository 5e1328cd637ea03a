//go:build !crashpoints

package engine

// crashpoint is a fault-injection point of the crash tests; without the
// crashpoints build tag it does nothing and compiles away.
func crashpoint(string, int) {}
