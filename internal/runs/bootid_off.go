//go:build !crashpoints

package runs

func testBootID() string { return "" }
