package steps

import (
	"reflect"
	"testing"
)

func TestParseShow(t *testing.T) {
	u, err := ParseShow("ActiveState=active\nSubState=running\nUnitFileState=enabled\nLoadState=loaded\n")
	if err != nil || u != (UnitState{Active: "active", Sub: "running", Enabled: "enabled", Load: "loaded"}) {
		t.Fatalf("got %+v %v", u, err)
	}
	// A unit that does not exist: systemctl show still answers.
	u, err = ParseShow("LoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n")
	if err != nil || u.Load != "not-found" || u.Enabled != "" {
		t.Fatalf("got %+v %v", u, err)
	}
	if _, err := ParseShow("Failed to connect to bus: No such file or directory"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestShowCommandQuotesUnit(t *testing.T) {
	got := ShowCommand("x; reboot")
	want := "systemctl show --no-pager --property=ActiveState,SubState,UnitFileState,LoadState -- 'x; reboot'"
	if got != want {
		t.Fatalf("got %s", got)
	}
}

func TestSystemdActions(t *testing.T) {
	yes, no := true, false
	running := UnitState{Active: "active", Sub: "running", Enabled: "enabled", Load: "loaded"}
	stopped := UnitState{Active: "inactive", Sub: "dead", Enabled: "disabled", Load: "loaded"}
	masked := UnitState{Active: "inactive", Sub: "dead", Enabled: "masked", Load: "masked"}
	tests := []struct {
		name string
		s    systemd
		u    UnitState
		want []string
	}{
		{"start a stopped unit", systemd{state: "started"}, stopped, []string{"systemctl start -- u"}},
		{"started is idempotent", systemd{state: "started"}, running, nil},
		{"stop and disable", systemd{state: "stopped", enabled: &no}, running, []string{"systemctl disable -- u", "systemctl stop -- u"}},
		{"stopped and disabled already", systemd{state: "stopped", enabled: &no}, stopped, nil},
		{"stop then mask", systemd{state: "stopped", masked: &yes}, running, []string{"systemctl stop -- u", "systemctl mask -- u"}},
		{"unmask, enable, start", systemd{state: "started", enabled: &yes, masked: &no}, masked, []string{"systemctl unmask -- u", "systemctl enable -- u", "systemctl start -- u"}},
		{"restart always acts", systemd{state: "restarted"}, running, []string{"systemctl restart -- u"}},
		{"reload a stopped unit starts it", systemd{state: "reloaded"}, stopped, []string{"systemctl start -- u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.actions("u", tt.u); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUnitNames: a pattern or an option is not a unit's name.
func TestUnitNames(t *testing.T) {
	for _, u := range []string{"postgresql@15-main", "postgresql-16.service", "inmanta-server", `system-getty\x2dx.slice`} {
		if err := checkUnit(u); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
	for _, u := range []string{"postgres*", "pg?", "[a-z]*", "--all", "a b", "", "x;id"} {
		if err := checkUnit(u); err == nil {
			t.Errorf("%q: accepted", u)
		}
	}
}
