//go:build !crashpoints

package durable

func testBootID() string { return "" }
