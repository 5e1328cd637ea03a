package steps

import (
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
)

// Inside is a text of a playbook written in a language of its own — a
// shell command, SQL — that validate reads further with that language's
// own checker (shellcheck, PostgreSQL's parser). Decoders collect them
// only when validating: a run never looks inside.
type Inside struct {
	// Field is the key the text is the value of ("command", "query").
	Field    string
	Template *tmpl.Template
	Lang     tmpl.Lang
	// Env names the environment variables a command is given (env:):
	// it may read them without setting them.
	Env []string
	// Args are the positions of the values bound to $1, $2, ... of SQL
	// text (args:); ArgsUnknown is set when their number is known only
	// at run time (args: ${{ expr }}).
	Args        []diag.Pos
	ArgsUnknown bool
	// Step names the step the text is in (its id, else its name),
	// for a finding on a text that several steps share through a YAML
	// alias; empty outside a step. The engine sets it.
	Step string
	node *yaml.Node
	d    *Decoder
}

// Pos is the position in the source of the byte at offset of the text.
func (in *Inside) Pos(offset int) diag.Pos { return in.d.PosIn(in.node, offset) }

// Folded reports whether the text is a folded block scalar (>), whose
// lines YAML joins with spaces.
func (in *Inside) Folded() bool { return in.node.Style&yaml.FoldedStyle != 0 }

// Inside records the text t, the value of field at n, for the checkers of
// lang, when the decoder collects texts (Insides is not nil). It returns
// the record for the step type to complete, or nil.
func (d *Decoder) Inside(field string, n *yaml.Node, t *tmpl.Template, lang tmpl.Lang) *Inside {
	if d.Insides == nil || n == nil || t == nil {
		return nil
	}
	in := &Inside{Field: field, Template: t, Lang: lang, node: n, d: d}
	*d.Insides = append(*d.Insides, in)
	return in
}
