package steps

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/internal/diag"

	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// Systemd starts, stops, enables, disables and masks units.
var Systemd Type = kind{decodeSystemd, Descriptor{
	Name: "systemd",
	Doc:  "bring a systemd unit to a state (started, stopped, enabled, masked) with systemctl; acts only on differences",
	// Result: the unit's states as systemctl show reports them.
	Result: types.Map{"active": types.String, "sub": types.String, "enabled": types.String, "load": types.String, "actions": types.Array(types.String)},
	Fields: []Field{
		{Name: "unit", Kind: String, Required: true, Doc: "the unit name", Example: "postgresql@15-main"},
		{Name: "state", Kind: Literal, Doc: "started and stopped act only when needed; restarted and reloaded always act", Enum: []string{"started", "stopped", "restarted", "reloaded"}},
		{Name: "enabled", Kind: Bool, Doc: "whether the unit starts at boot"},
		{Name: "masked", Kind: Bool, Doc: "whether the unit is masked (cannot be started at all)"},
	},
}}

type systemd struct {
	unit            *tmpl.Template
	state           string
	enabled, masked *bool
}

// decodeSystemd builds a step of the type from its body (Type.Decode).
func decodeSystemd(d *Decoder, b Body) Step {
	s := &systemd{unit: d.Template(b.Get("unit")), state: d.Literal(b.Get("state"))}
	d.RefuseSecret(b.Get("unit"), s.unit, diag.RuleSecretInCommand, "unit", "the unit name goes on systemctl's command line, which the host's process list shows")
	if n := b.Get("enabled"); n != nil {
		v := d.Bool(n)
		s.enabled = &v
	}
	if n := b.Get("masked"); n != nil {
		v := d.Bool(n)
		s.masked = &v
		if v && (s.state == "started" || s.state == "restarted" || s.state == "reloaded") {
			d.Errorf(n, diag.RuleInvalidValue, "a masked unit cannot be %s", s.state)
		}
		if v && s.enabled != nil && *s.enabled {
			d.Errorf(n, diag.RuleInvalidValue, "a masked unit cannot be enabled")
		}
	}
	return s
}

// actionTimeout bounds one systemctl action.
const actionTimeout = 3 * time.Minute

// UnitState is what systemctl show says of a unit.
type UnitState struct {
	Active, Sub, Enabled, Load string
}

// ShowCommand is the read-only command that observes a unit.
func ShowCommand(unit string) string {
	return "systemctl show --no-pager --property=ActiveState,SubState,UnitFileState,LoadState -- " + tmpl.ShellQuote(unit)
}

// ParseShow reads the output of ShowCommand.
func ParseShow(out string) (UnitState, error) {
	var u UnitState
	props := map[string]*string{"ActiveState": &u.Active, "SubState": &u.Sub, "UnitFileState": &u.Enabled, "LoadState": &u.Load}
	seen := 0
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if p, known := props[k]; ok && known {
			*p = v
			seen++
		}
	}
	if seen < 3 {
		return u, fmt.Errorf("unexpected systemctl show output: %q", strings.TrimSpace(out))
	}
	return u, nil
}

// Actions returns the systemctl commands that bring a unit from u to the
// wanted state, in the order they must run.
func (s *systemd) actions(unit string, u UnitState) []string {
	var acts []string
	q := tmpl.ShellQuote(unit)
	if s.masked != nil && !*s.masked && u.Enabled == "masked" {
		acts = append(acts, "systemctl unmask -- "+q)
		u.Enabled = "disabled"
	}
	if s.enabled != nil {
		isEnabled := u.Enabled == "enabled" || u.Enabled == "enabled-runtime"
		if *s.enabled && !isEnabled && u.Enabled != "static" && u.Enabled != "alias" {
			acts = append(acts, "systemctl enable -- "+q)
		}
		if !*s.enabled && isEnabled {
			acts = append(acts, "systemctl disable -- "+q)
		}
	}
	running := u.Active == "active" || u.Active == "activating" || u.Active == "reloading"
	switch s.state {
	case "started":
		if !running {
			acts = append(acts, "systemctl start -- "+q)
		}
	case "stopped":
		if running {
			acts = append(acts, "systemctl stop -- "+q)
		}
	case "restarted":
		acts = append(acts, "systemctl restart -- "+q)
	case "reloaded":
		if running {
			acts = append(acts, "systemctl reload -- "+q)
		} else {
			acts = append(acts, "systemctl start -- "+q)
		}
	}
	// Masking comes last: a unit is stopped before it is masked.
	if s.masked != nil && *s.masked && u.Enabled != "masked" {
		acts = append(acts, "systemctl mask -- "+q)
	}
	return acts
}

// unitName matches a unit name as systemd allows it (systemd.unit(5):
// letters, digits, ":", "-", "_", ".", "\\", with "@" for instances);
// systemctl reads a name with *, ? or [ as a pattern matching every
// loaded unit it fits.
var unitName = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+$`)

// checkUnit refuses what is not one unit's name.
func checkUnit(unit string) error {
	if !unitName.MatchString(unit) || strings.HasPrefix(unit, "-") {
		return fmt.Errorf("unit %q is not a unit name: systemd allows letters, digits and : - _ . \\ @ (systemd.unit(5)), and systemctl reads *, ? and [ as a pattern that acts on every unit it matches; name one unit", unit)
	}
	return nil
}

func (s *systemd) observe(ctx context.Context, x *Exec) (string, UnitState, transport.Conn, error) {
	unit, err := s.unit.Render(x.Env)
	if err != nil {
		return "", UnitState{}, nil, err
	}
	if err := checkUnit(unit); err != nil {
		return "", UnitState{}, nil, err
	}
	conn, err := x.Connect(ctx)
	if err != nil {
		return "", UnitState{}, nil, err
	}
	out, err := conn.Run(ctx, &transport.Command{Line: ShowCommand(unit)})
	if err != nil {
		return "", UnitState{}, nil, err
	}
	if out.ExitCode != 0 {
		return "", UnitState{}, nil, fmt.Errorf("systemctl show %s: exit status %d: %s", unit, out.ExitCode, lastLine(x.Redact, out.Stderr))
	}
	u, err := ParseShow(string(out.Stdout))
	return unit, u, conn, err
}

func (u UnitState) result(actions []string) Result {
	acts := make([]any, len(actions))
	for i, a := range actions {
		acts[i] = a
	}
	return Result{"active": u.Active, "sub": u.Sub, "enabled": u.Enabled, "load": u.Load, "actions": acts}
}

// Probe observes the unit.
func (s *systemd) Probe(ctx context.Context, x *Exec) (Result, error) {
	_, u, _, err := s.observe(ctx, x)
	if err != nil {
		return nil, err
	}
	return u.result(nil), nil
}

// Plan says which systemctl commands would run.
func (s *systemd) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	unit, u, _, err := s.observe(ctx, x)
	if err != nil {
		return nil, err
	}
	if u.Load == "not-found" && (s.state != "" && s.state != "stopped" || s.enabled != nil && *s.enabled) {
		return nil, fmt.Errorf("unit %s is not installed on %s", unit, x.Host.Name)
	}
	acts := s.actions(unit, u)
	if len(acts) == 0 {
		return &Plan{Summary: fmt.Sprintf("%s already %s/%s", unit, u.Active, u.Enabled), Result: u.result(nil)}, nil
	}
	return &Plan{Changes: true, Summary: strings.Join(acts, "; "), State: acts}, nil
}

// Apply runs the planned systemctl commands and observes the unit again.
func (s *systemd) Apply(ctx context.Context, x *Exec, p *Plan) (Result, error) {
	acts := p.State.([]string)
	conn, err := x.Connect(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range acts {
		// A unit whose own start timeout is infinite (PostgreSQL's is) would
		// hang the run on a broken configuration: each action gets a limit.
		actx, cancel := context.WithTimeout(ctx, actionTimeout)
		out, err := conn.Run(actx, &transport.Command{Line: a})
		cancel()
		if err != nil {
			if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
				unit, _ := s.unit.Render(x.Env)
				return nil, fmt.Errorf("%s did not finish in %s; see journalctl -u %s on %s", a, actionTimeout, unit, x.Host.Name)
			}
			return nil, err
		}
		if out.ExitCode != 0 {
			return nil, fmt.Errorf("%s: exit status %d: %s", a, out.ExitCode, lastLine(x.Redact, out.Stderr, out.Stdout))
		}
	}
	_, u, _, err := s.observe(ctx, x)
	if err != nil {
		return nil, err
	}
	return u.result(acts), nil
}

// MayChange implements Changer.
func (s *systemd) MayChange() bool { return s.state != "" || s.enabled != nil || s.masked != nil }

// Rechecks implements Rechecker: started, stopped, enabled and masked act only when needed; a restart or reload done twice leaves the unit as once.
func (*systemd) Rechecks() bool { return true }
