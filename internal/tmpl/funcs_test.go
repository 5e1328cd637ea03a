package tmpl

import "testing"

// TestScramRoundTrip checks verify against compute; the format is checked
// against a real PostgreSQL in steps (TestSQLScramPassword).
func TestScramRoundTrip(t *testing.T) {
	got, err := scramWith("pencil", []byte("0123456789abcdef"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !ScramVerify(got, "pencil") || ScramVerify(got, "pencil2") {
		t.Fatalf("verify failed for %s", got)
	}
	v, err := ScramVerifier("s3cret")
	if err != nil || !ScramVerify(v, "s3cret") {
		t.Fatalf("%s %v", v, err)
	}
	if ScramVerify("md5abc", "x") {
		t.Fatal("an md5 hash verified")
	}
}
