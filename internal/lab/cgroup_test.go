package lab

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCgroupHierarchies(t *testing.T) {
	tests := []struct {
		name, mountinfo string
		want            []string
	}{
		{"hybrid", `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`, []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"}},
		{"unified", `30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`, []string{"/sys/fs/cgroup"}},
		// Inside a container: a group below the root, not the machine's.
		{"group below the root", `612 600 0:38 /payload /sys/fs/cgroup rw - cgroup2 cgroup rw
`, nil},
		{"none", `22 1 0:21 / /proc rw - proc proc rw
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCgroupHierarchies(strings.NewReader(tt.mountinfo))
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
