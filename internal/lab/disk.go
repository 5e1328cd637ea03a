package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Disk gives a host a disk of its own mounted at path (created if
// missing), as a DBA mounts a data or WAL disk: an ext4 filesystem of
// sizeMiB in an image file under the host's lab directory, on a loop
// device, mounted in the host's mount namespace. It has what a real
// disk's filesystem has (its own free space, lost+found, a mount point
// that cannot be renamed) and fills up as one does.
//
// The mount lives as long as the host runs: a host stopped or killed and
// booted again (fault start) comes back without it, as a machine whose
// fstab does not name the disk. The loop device is released when the
// host's mounts go, and the image with the lab.
func (l *Lab) Disk(ctx context.Context, host, path string, sizeMiB int) error {
	if !filepath.IsAbs(path) || strings.ContainsAny(path, "\n\t") {
		return fmt.Errorf("disk mount point %q: an absolute path without line breaks or tabs", path)
	}
	for _, prog := range []string{"mkfs.ext4", "losetup", "nsenter"} {
		if !lookPath(prog) {
			return fmt.Errorf("a lab disk needs %s: apt-get install -y e2fsprogs mount util-linux", prog)
		}
	}
	if sizeMiB < 8 {
		return fmt.Errorf("a disk of %d MiB: ext4 needs 8 MiB or more", sizeMiB)
	}
	ld, err := l.runningLeader(host)
	if err != nil {
		return err
	}
	dir := filepath.Join(l.hostDir(host), "disks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	name := strings.Trim(strings.ReplaceAll(filepath.Clean(path), "/", "-"), "-")
	img := filepath.Join(dir, name+".img")
	if _, err := os.Stat(img); err == nil {
		return fmt.Errorf("%s already has a disk at %s", host, path)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(img, int64(sizeMiB)<<20); err != nil {
		return err
	}
	if err := run("mkfs.ext4", "-q", "-F", "-L", name, img); err != nil {
		os.Remove(img)
		return err
	}
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		os.Remove(img)
		return fmt.Errorf("losetup: %v: %s", err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	// Detached now, the device stays while it is mounted and is released
	// with the mount (autoclear): nothing to clean up but the image.
	defer func() { _ = run("losetup", "--detach", dev) }()
	var stat unix.Stat_t
	if err := unix.Stat(dev, &stat); err != nil {
		return err
	}
	// The host's /dev is its own: the device node is made there for the
	// mount and removed after it. A process entering the host's mount
	// namespace from here is not bound by the host's device rules.
	node := "/dev/rblab-" + name
	script := `mkdir -p -- "$1" && mknod -- "$2" b "$3" "$4" && mount -t ext4 -- "$2" "$1"; rc=$?; rm -f -- "$2"; exit $rc`
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(ld), "-m", "--", "sh", "-c", script, "sh",
		path, node, strconv.Itoa(int(unix.Major(uint64(stat.Rdev)))), strconv.Itoa(int(unix.Minor(uint64(stat.Rdev)))))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mount %s on %s: %v: %s", path, host, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// Loops returns the loop devices whose backing file is under the lab
// directory: none once the lab is down.
func (l *Lab) Loops() []string { return l.labLoops() }

// labLoops returns the loop devices whose backing file is under the lab
// directory: those of disks whose host never mounted them (an up or a
// disk cut short).
func (l *Lab) labLoops() []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	prefix := filepath.Clean(l.Dir) + "/"
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(b)), prefix) {
			continue
		}
		out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
	}
	return out
}
