package steps

// Kind is the kind of value a field takes.
type Kind string

// The kinds of field values.
const (
	// String is text that may contain ${{ }} expressions.
	String Kind = "string"
	// Literal is text without expressions.
	Literal Kind = "literal"
	Bool    Kind = "bool"
	Int     Kind = "int"
	// Port is a port number (1-65535), written as one or as an expression
	// (${{ params.port }}) whose value is known at run time.
	Port Kind = "port"
	// Duration is a Go duration such as 30s or 1m30s.
	Duration Kind = "duration"
	// Expr is a bare expression that yields a bool.
	Expr Kind = "expression"
	// StringMap is a mapping of names to strings (with expressions).
	StringMap Kind = "string-map"
	// StringList is a list of strings (with expressions).
	StringList Kind = "string-list"
	// IntList is a list of integers, or a single one.
	IntList Kind = "int-list"
	// Any is any YAML value; expressions are allowed in its strings.
	Any Kind = "any"
	// Object is a mapping with the keys in Field.Fields.
	Object Kind = "object"
	// ObjectList is a list of mappings with the keys in Field.Fields.
	ObjectList Kind = "object-list"
	// Probe is a read-only step body with its own host.
	Probe Kind = "probe"
)

// Field describes one key of a step body. The same description drives the
// decoder's checks and the JSON Schema, so the two cannot drift apart.
type Field struct {
	Name     string
	Kind     Kind
	Required bool
	Doc      string
	Example  any
	Enum     []string
	// Default is shown in the schema; the step type applies it.
	Default any
	// Fields are the keys of an Object or ObjectList.
	Fields []Field
	// Dynamic marks a Bool or Int field that also takes an expression
	// (retries: ${{ params.n }}), decoded with Decoder.IntValue or
	// BoolValue: type-checked at validation when the expression's type is
	// known there, converted at run time otherwise.
	Dynamic bool
}
