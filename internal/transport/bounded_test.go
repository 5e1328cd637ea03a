package transport

import (
	"strings"
	"testing"
)

// TestBoundedKeepsWholeLines: output cut at its limit keeps only whole
// lines, so that no secret is shown by its first bytes.
func TestBoundedKeepsWholeLines(t *testing.T) {
	b := &boundedBuffer{max: 20}
	_, _ = b.Write([]byte("first line\n"))
	_, _ = b.Write([]byte("Sup3rS3cretPw!Zq\nmore\n"))
	if !b.dropped || string(b.buf) != "first line\n" {
		t.Fatalf("kept %q (dropped %v), want the first line only", b.buf, b.dropped)
	}
	_, _ = b.Write([]byte("x\n"))
	if string(b.buf) != "first line\n" {
		t.Fatalf("wrote after the cut: %q", b.buf)
	}
	one := &boundedBuffer{max: 8}
	_, _ = one.Write([]byte(strings.Repeat("a", 4) + "Sup3rS3cret"))
	if len(one.buf) != 0 {
		t.Fatalf("kept %q of a line cut at the limit", one.buf)
	}
}
