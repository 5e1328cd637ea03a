package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/runbook-dev/runbook/engine"
)

// confirmer answers a run's confirmation gates: every one with --yes,
// without asking; otherwise on the terminal stdin is, by showing the gate
// and asking for its word. With neither it returns nil, and the engine
// refuses a run that could reach a gate before the run starts. operator
// (user@machine) is journaled with each answer.
func (e *Env) confirmer(yes bool, operator string) engine.Confirmer {
	if yes {
		return func(context.Context, *engine.Gate) (engine.Answer, error) {
			return engine.Answer{Yes: true, Operator: operator}, nil
		}
	}
	f, ok := e.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	in := bufio.NewReader(f)
	return func(ctx context.Context, g *engine.Gate) (engine.Answer, error) {
		e.showGate(g)
		// Only what is typed after the question answers it: lines typed
		// or pasted ahead are dropped.
		flushInput(f)
		in.Reset(f)
		fmt.Fprintf(e.Stderr, "Type %s to continue: ", g.Word)
		line, err := readLine(ctx, in)
		if err != nil {
			fmt.Fprintln(e.Stderr)
		}
		return engine.Answer{Typed: line, Operator: operator}, err
	}
}

// showGate prints a gate on stderr, where the operator answers it: the
// text, then what the step is about to change.
func (e *Env) showGate(g *engine.Gate) {
	if e.isTerminal(e.Stderr) {
		// The line of the running step, when stdout shares the terminal.
		fmt.Fprint(e.Stderr, "\r\033[K")
	}
	if g.Index == 0 {
		fmt.Fprintf(e.Stderr, "\nConfirmation before the first step of %s:\n", g.Step)
	} else {
		fmt.Fprintf(e.Stderr, "\nConfirmation before [%d] %s [%s]:\n", g.Index, g.Step, g.Host)
	}
	for _, l := range strings.Split(g.Text, "\n") {
		fmt.Fprintf(e.Stderr, "  %s\n", l)
	}
	if g.Plan != "" {
		fmt.Fprintf(e.Stderr, "  The step will: %s\n", g.Plan)
	}
	if g.Diff != "" {
		for _, l := range strings.Split(strings.TrimRight(g.Diff, "\n"), "\n") {
			fmt.Fprintf(e.Stderr, "    %s\n", l)
		}
	}
}

// readLine reads one line without its end; Ctrl-C (ctx) stops the wait.
// The input ending before a full line is an error: no answer.
func readLine(ctx context.Context, in *bufio.Reader) (string, error) {
	type read struct {
		line string
		err  error
	}
	c := make(chan read, 1)
	go func() {
		line, err := in.ReadString('\n')
		c <- read{strings.TrimRight(line, "\r\n"), err}
	}()
	select {
	case r := <-c:
		return r.line, r.err
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}
