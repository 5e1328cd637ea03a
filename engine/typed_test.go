package engine_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRetriesFromExpression: retries: ${{ params.n }} is evaluated at run
// time, a string of digits (a param given on the command line) converted;
// a value that is no integer fails the step naming the expression.
func TestRetriesFromExpression(t *testing.T) {
	src := `
version: 1
name: retries
params:
  dir: {type: string}
  n: {type: string}
steps:
  - id: flaky
    retries: ${{ params.n }}
    retry_delay: 10ms
    ssh-exec:
      command: echo x >> ${{ params.dir }}/n; test "$(wc -l < ${{ params.dir }}/n)" -ge 3
`
	dir := t.TempDir()
	if _, err := run(t, mustLoad(t, src), map[string]string{"dir": dir, "n": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, filepath.Join(dir, "n")); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	dir = t.TempDir()
	_, err := run(t, mustLoad(t, src), map[string]string{"dir": dir, "n": "two"}, nil)
	if err == nil || !strings.Contains(err.Error(), `retries: ${{ params.n }} is "two", not an integer`) {
		t.Fatalf("retries: two: %v, want an error naming the expression", err)
	}
}
