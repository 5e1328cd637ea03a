package engine

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/runbook-dev/runbook/internal/tmpl"
)

// frameEnv is what the expressions of one frame (the top playbook, or a
// playbook it includes) read: its params, vars and facts, the run's
// secrets and inventory, and the results of its own steps.
type frameEnv struct {
	base  map[string]any
	steps map[string]any
}

// env returns the environment frame fr (nil: the top playbook) starts
// from.
func (x *run) env(fr *Frame) map[string]any { return x.frames[fr].base }

// stepsOf returns the results of frame fr's steps so far (steps in its
// expressions).
func (x *run) stepsOf(fr *Frame) map[string]any { return x.frames[fr].steps }

// fileOf names the file of frame fr's playbook, for messages.
func (x *run) fileOf(fr *Frame) string {
	if fr == nil {
		return x.pb.File
	}
	return fr.Playbook.File
}

// newFrameEnv returns the environment of a frame from its params and the
// run's secrets; vars and facts are added by prepare and observeFacts.
func (x *run) newFrameEnv(fr *Frame, params, secrets map[string]any) {
	done := map[string]any{}
	x.frames[fr] = &frameEnv{steps: done, base: map[string]any{"params": params, "secrets": secrets, "steps": done,
		"inventory": inventoryEnv(x.inv), "vars": map[string]any{}, "facts": map[string]any{}}}
}

// prepareFrames computes, parents first, each included playbook's params
// from the values its includer gives (in the includer's environment),
// then its vars. A value computed from a secret is masked from then on.
func (x *run) prepareFrames(secrets map[string]any) error {
	for _, fr := range x.pb.Frames {
		parent := x.env(fr.Parent)
		why, err := x.frameSkip(fr, parent)
		if err != nil {
			return err
		}
		if why != "" {
			x.skipped[fr] = why
			// Its params are not computed: they may only make sense
			// when it runs (a host param left empty).
			x.newFrameEnv(fr, map[string]any{}, secrets)
			continue
		}
		params := map[string]any{}
		for _, p := range fr.Playbook.Params {
			t, ok := fr.Params[p.Name]
			if !ok {
				if p.HasDefault {
					params[p.Name] = p.Default
				}
				continue
			}
			v, err := t.Value(parent)
			if err != nil {
				return fmt.Errorf("%s:%s: %s: param %s: %w", fr.File, fr.Pos, fr.Path(), p.Name, err)
			}
			if t.UsesSecret() {
				x.mask(leaves(v)...)
			}
			if v, err = paramValue(p, v); err != nil {
				return fmt.Errorf("%s:%s: %s: param %s: %w", fr.File, fr.Pos, fr.Path(), p.Name, x.redactor().Error(err))
			}
			params[p.Name] = v
		}
		x.newFrameEnv(fr, params, secrets)
		if err := x.prepareVars(fr, fr.Playbook.Params, fr.Playbook.Vars); err != nil {
			return err
		}
	}
	return nil
}

// frameSkip says why frame fr does not run ("" when it does): its
// includer's does not, or its when is false in its includer's
// environment (parent).
func (x *run) frameSkip(fr *Frame, parent map[string]any) (string, error) {
	if why := x.skipped[fr.Parent]; why != "" {
		return why, nil
	}
	if fr.When == nil {
		return "", nil
	}
	ok, err := fr.When.EvalBool(parent)
	if err != nil {
		return "", fmt.Errorf("%s:%s: %s: when: %w", fr.File, fr.Pos, fr.Path(), x.redactor().Error(err))
	}
	if ok {
		return "", nil
	}
	return fmt.Sprintf("when of %s is false: %s", fr.Path(), fr.When.Source), nil
}

// skips says whether the part of the tree that frame fr is (nil: the
// top playbook) does not run: its include's when is false.
func (x *run) skips(fr *Frame) bool { return x.skipped[fr] != "" }

// paramValue turns a value an includer computed into a value of param p,
// checked as -p checks one.
func paramValue(p *Param, v any) (any, error) {
	switch p.Type {
	case TypeList:
		if rv := reflect.ValueOf(v); v != nil && (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array) {
			out := make([]any, rv.Len())
			for i := range out {
				out[i] = rv.Index(i).Interface()
			}
			return out, nil
		}
	case TypeDuration:
		if d, ok := v.(time.Duration); ok {
			return d, nil
		}
	}
	return p.Parse(tmpl.Format(v))
}

// prepareVars checks the host params of frame fr and computes its vars, in
// order.
func (x *run) prepareVars(fr *Frame, params []*Param, vars []*Var) error {
	base := x.env(fr)
	// A host parameter names a host of the inventory: said here, before
	// a var that reads inventory[params.NAME] fails on what it lacks.
	for _, p := range params {
		if v, ok := base["params"].(map[string]any)[p.Name].(string); ok && p.Type == TypeHost {
			if _, err := x.inv.Host(v); err != nil {
				if fr != nil {
					return fmt.Errorf("%s: param %s: %w", fr.Path(), p.Name, err)
				}
				return fmt.Errorf("param %s: %w", p.Name, err)
			}
		}
	}
	out := base["vars"].(map[string]any)
	for _, v := range vars {
		val, err := v.Value.Value(base)
		if err != nil {
			return fmt.Errorf("%s:%s: var %s: %w", x.fileOf(fr), v.Pos, v.Name, err)
		}
		out[v.Name] = val
	}
	return nil
}

// lockNames renders the locks of the whole tree, each once, sorted: two
// runs that take some of the same locks take them in the same order.
func (x *run) lockNames() ([]string, error) {
	seen := map[string]bool{}
	var names []string
	add := func(fr *Frame, t *tmpl.Template) error {
		if t == nil {
			return nil
		}
		name, err := t.Render(x.env(fr))
		if err != nil {
			return fmt.Errorf("lock of %s: %w", x.fileOf(fr), err)
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
		return nil
	}
	if err := add(nil, x.pb.Lock); err != nil {
		return nil, err
	}
	for _, fr := range x.pb.Frames {
		if x.skips(fr) {
			continue
		}
		if err := add(fr, fr.Playbook.Lock); err != nil {
			return nil, err
		}
	}
	sort.Strings(names)
	return names, nil
}

// takeLocks takes every lock of the tree, once each, and returns what
// releases them all.
func (x *run) takeLocks(ctx context.Context, take func(ctx context.Context, name string) (func(), error)) (func(), error) {
	names, err := x.lockNames()
	if err != nil {
		return nil, err
	}
	var releases []func()
	release := func() {
		for i := len(releases) - 1; i >= 0; i-- {
			releases[i]()
		}
	}
	for _, name := range names {
		r, err := take(ctx, name)
		if err != nil {
			release()
			return nil, err
		}
		releases = append(releases, r)
	}
	return release, nil
}
