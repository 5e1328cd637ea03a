package engine

import (
	"math"
	"os"
	"runtime/debug"
)

// gcBudget makes validation collect garbage less often, and bounds the
// memory that costs. Validation is a short burst of allocation-heavy
// parsing whose garbage dies young: collecting at 5 times the live heap
// (GOGC=400) nearly halves its time on large trees (BenchmarkValidate1000).
// Alone, that lets the heap grow to 5 times the peak of live data, which
// for a 16 MB playbook of 200,000 steps (a YAML tree of about 13 times
// its text, held while it is decoded) was a resident set of 1 GB. A soft
// limit of 64 MiB plus 32 times the text (of the largest file when they
// are read one at a time) makes the collector run sooner
// on large inputs, and changes nothing on the small ones. It returns the
// function that restores both settings.
func gcBudget(files []input) func() {
	total := 0
	for _, f := range files {
		if f.src != nil {
			total += len(f.src)
		} else if fi, err := os.Stat(f.name); err == nil {
			// Read later, one at a time.
			total = max(total, int(fi.Size()))
		}
	}
	limit := int64(64<<20) + 32*int64(total)
	if total > math.MaxInt64/32 {
		limit = math.MaxInt64
	}
	percent := debug.SetGCPercent(400)
	prev := debug.SetMemoryLimit(limit)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(prev)
	}
}
