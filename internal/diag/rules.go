package diag

import "strings"

// Rule ids are stable: CI configurations and suppressions refer to them.
// Each constant is named after the id it holds (RuleStepTypeCount is
// "step-type-count"), except RuleShellcheckPrefix, which starts ids.
const (
	RuleYAMLSyntax         = "yaml-syntax"
	RuleUnknownKey         = "unknown-key"
	RuleUnknownStepType    = "unknown-step-type"
	RuleStepTypeCount      = "step-type-count"
	RuleMissingField       = "missing-field"
	RuleTypeMismatch       = "type-mismatch"
	RuleDuplicateID        = "duplicate-id"
	RuleDuplicateKey       = "duplicate-key"
	RuleExprSyntax         = "expr-syntax"
	RuleExprType           = "expr-type"
	RuleUndefinedReference = "undefined-reference"
	RuleForwardReference   = "forward-reference"
	RuleVersion            = "version"
	RuleSecretInCommand    = "secret-in-command"
	RuleSecretExposed      = "secret-exposed"
	RuleInvalidValue       = "invalid-value"
	RuleNotAPlaybook       = "not-a-playbook"
	RulePlaintextSecret    = "plaintext-secret"
	RuleUnusedParam        = "unused-param"
	RuleUnboundedFanout    = "unbounded-fanout"
	RuleUnguardedChange    = "unguarded-change"
	RuleIdleConfirm        = "idle-confirm"
	// RuleGuardNeverRefuses is a guard with tolerate: [failed]: it never
	// refuses the run, it only keeps the hosts it fails on from changes.
	RuleGuardNeverRefuses = "guard-never-refuses"
	// RuleShellInterpolation and RuleSQLInterpolation refuse a ${{ }}
	// where no quoting makes a value safe; RuleUnsafeRaw refuses raw() of
	// a value from outside the playbook in a command or SQL text.
	RuleShellInterpolation = "shell-interpolation"
	RuleSQLInterpolation   = "sql-interpolation"
	RuleUnsafeRaw          = "unsafe-raw"
	// RuleShellDataPosition refuses a ${{ }} in a command where runbook
	// cannot prove the value stays data (an unknown program, a shell
	// function, an assignment to the environment).
	RuleShellDataPosition = "shell-data-position"
	// RuleShellcheckPrefix starts the rule id of a finding of shellcheck
	// in a command, followed by its code: shellcheck:SC2086.
	RuleShellcheckPrefix = "shellcheck:"
	// RuleSQLSyntax is SQL text that PostgreSQL's parser rejects;
	// RuleSQLArgs $n parameters that do not match the values of args:.
	RuleSQLSyntax = "sql-syntax"
	RuleSQLArgs   = "sql-args"
	// RuleSQLStatements is SQL text of several statements where the
	// driver sends it as one prepared statement, which holds one.
	RuleSQLStatements = "sql-statements"
	// RuleShellcheckLimit is a command shellcheck was not given (too
	// long) or did not finish (time, memory).
	RuleShellcheckLimit = "shellcheck-limit"
	// RuleFoldedComment is a shell comment in a folded (>) command that
	// YAML joins with the next line, commenting it out.
	RuleFoldedComment = "folded-comment"
	// RuleNULByte is a NUL byte in a command or SQL text.
	RuleNULByte = "nul-byte"
)

// Rules describes every rule id, for --list-rules and documentation.
var Rules = []struct{ ID, Description string }{
	{RuleYAMLSyntax, "the file is not valid YAML"},
	{RuleNotAPlaybook, "the document is not a playbook mapping"},
	{RuleVersion, "the format version is missing or unsupported"},
	{RuleUnknownKey, "a key that the format does not define (often a typo)"},
	{RuleUnknownStepType, "a step whose type key is not a known step type"},
	{RuleStepTypeCount, "a step with no step-type key or more than one"},
	{RuleMissingField, "a required field is missing"},
	{RuleTypeMismatch, "a value of the wrong type (for example timeout: banana)"},
	{RuleInvalidValue, "a value of the right type that is not allowed here"},
	{RuleDuplicateID, "two steps or guards share an id"},
	{RuleDuplicateKey, "a key written twice in one mapping, of which YAML would keep one value"},
	{RuleExprSyntax, "an expression that does not parse"},
	{RuleExprType, "an expression that does not type-check against its environment"},
	{RuleUndefinedReference, "a reference to a param, secret or step that is not defined"},
	{RuleForwardReference, "a reference to the result of a step that runs later"},
	{RuleSecretInCommand, "a value that may hold a secret (read from secrets, or computed from a value that holds one) on a command line, where ps would show it"},
	{RuleSecretExposed, "a value that may hold a secret where it would be shown or kept in the clear: a lock name, a host, a file path, a confirmation word, vars"},
	{RuleShellInterpolation, "a ${{ }} in a command where no quoting makes a value safe (a comment, backquotes, ${...}, arithmetic, the script of sh -c or eval, a name)"},
	{RuleSQLInterpolation, "a ${{ }} in SQL text where no quoting makes a value safe (a string literal, a comment, joined to other text): values go in args: or literal()"},
	{RuleShellDataPosition, "a ${{ }} in a command where runbook cannot prove the value stays data: an argument of a program it does not know, a shell function, an assignment to a command's environment, a pipe into a compound command; pass it with env: and use \"$NAME\""},
	{RuleUnsafeRaw, "raw() of a value from outside the playbook (params, inventory, results) in a command or SQL text, where it would run as code"},
	{RuleShellcheckPrefix + "SCnnnn", "a finding of shellcheck in a command, unless or probe command, checked as POSIX sh (https://www.shellcheck.net/wiki/SCnnnn); errors fail, the other levels are warnings"},
	{RuleSQLSyntax, "SQL text (query, exec, unless) that PostgreSQL's parser rejects"},
	{RuleSQLArgs, "$n parameters of SQL text that do not match the values of args: (one with no value, or a value no $n uses)"},
	{RuleSQLStatements, "several SQL statements in a query, an unless, or an exec with args:, which the driver sends as one prepared statement and PostgreSQL refuses"},
	{RuleShellcheckLimit, "a command shellcheck did not check: longer than it is given (warning), or it ran out of time or memory on it (error)"},
	{RuleFoldedComment, "a # comment in a folded (>) command that YAML joins with the next line, which the comment then hides from the shell (warning)"},
	{RuleNULByte, "a NUL byte in a command or SQL text, which neither a command line nor PostgreSQL's parser takes"},
	{RulePlaintextSecret, "a password written in plain text instead of a secret (warning)"},
	{RuleUnusedParam, "a param or secret that nothing uses (warning)"},
	{RuleUnboundedFanout, "a hosts: step without a parallel bound (warning)"},
	{RuleUnguardedChange, "a step that changes a host with no guard before it and no verification after it (warning)"},
	{RuleIdleConfirm, "a confirm: on a step that never changes anything, so it is never asked (warning)"},
	{RuleGuardNeverRefuses, "a guard with tolerate: [failed], which never refuses the run: the hosts it fails on are only kept from changes (warning)"},
}

// HelpURI returns where a rule is explained: shellcheck's wiki for its
// findings, runbook's documentation for the others.
func HelpURI(rule string) string {
	if code, ok := strings.CutPrefix(rule, RuleShellcheckPrefix); ok {
		return "https://www.shellcheck.net/wiki/" + code
	}
	return "https://runbook.dev/docs/rules#" + rule
}
