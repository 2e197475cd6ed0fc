// Package faultfs mounts, for tests, a file system that fails on demand:
// a FUSE loopback of a backing directory whose value-log files (Badger's
// .vlog) fail fsync, and so msync, with EIO from FS.FailSyncs(true) until
// FS.FailSyncs(false). It shows what a store does when the kernel reports that
// written pages did not reach the disk, which no other file system here can
// be made to do.
//
// The file system is served by a child process: a test binary whose
// TestMain calls ServeIfAsked first. (Served in the process that maps the
// files, its server goroutines could wait behind the page faults they are
// to answer.) Mounting needs /dev/fuse and root; Mount skips the test
// otherwise, saying so.
package faultfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// failFile is the file whose presence in the backing directory makes every
// fsync of a value-log file fail.
const failFile = "FAIL_VLOG_SYNC"

// env names "backing:mountpoint" in the child process that serves a mount.
const env = "INTERMESH_FAULT_FS"

// ServeIfAsked serves the mount its process was started for, and exits,
// when it was started by Mount; otherwise it returns at once. Call it first
// in TestMain.
func ServeIfAsked() {
	spec := os.Getenv(env)
	if spec == "" {
		return
	}
	if err := serve(spec); err != nil {
		fmt.Fprintln(os.Stderr, "faultfs:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// FS is a mounted fault-injecting file system.
type FS struct {
	// Dir is where it is mounted: files written below it land in a
	// backing directory of their own.
	Dir string

	t       testing.TB
	backing string
}

// Mount mounts the loopback of a new temporary directory on another,
// served by a child process (this test binary), and unmounts it when t
// ends.
func Mount(t testing.TB) *FS {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skipf("faultfs: needs /dev/fuse and root to mount a FUSE file system (stat: %v, euid %d)", err, os.Geteuid())
	}
	f := &FS{Dir: t.TempDir(), t: t, backing: t.TempDir()}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env+"="+f.backing+":"+f.Dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("faultfs: %v", err)
			syscall.Unmount(f.Dir, syscall.MNT_DETACH)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "mounted\n" {
		t.Fatalf("faultfs: did not mount %s: %q, %v", f.Dir, line, err)
	}
	return f
}

// FailSyncs makes the value-log files below f.Dir fail their syncs from now
// on (fail true) or sync again (fail false).
func (f *FS) FailSyncs(fail bool) {
	f.t.Helper()
	path := filepath.Join(f.backing, failFile)
	var err error
	if fail {
		err = os.WriteFile(path, nil, 0o644)
	} else {
		err = os.Remove(path)
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

// serve mounts the file system spec names, says "mounted" on standard
// output, and serves it until standard input closes; then it unmounts it.
func serve(spec string) error {
	backing, mnt, ok := strings.Cut(spec, ":")
	if !ok {
		return fmt.Errorf("%s=%q: want backing:mountpoint", env, spec)
	}
	loopback, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return err
	}
	server, err := fs.Mount(mnt, &node{loopback.(*fs.LoopbackNode)}, &fs.Options{
		MountOptions: fuse.MountOptions{DirectMountStrict: true, FsName: "faultfs"},
	})
	if err != nil {
		return err
	}
	fmt.Println("mounted")
	io.Copy(io.Discard, os.Stdin)
	for range 20 {
		if err = server.Unmount(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Files still open: a store that failed a sync may not close them all.
	// Detached, the mount goes once they are closed (when the test ends).
	if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting %s: %w", mnt, err)
	}
	return nil
}

// node is a loopback node whose value-log files fail fsync while the
// backing directory holds failFile.
type node struct{ *fs.LoopbackNode }

// WrapChild makes the nodes below a node nodes too.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{ops.(*fs.LoopbackNode)}
}

// Open opens the file as the loopback does, with syncs that may fail.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	return n.wrap(fh, n.Path(nil)), ff, errno
}

// Create creates the file as the loopback does, with syncs that may fail.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return inode, n.wrap(fh, name), ff, errno
}

// wrap makes fh, the handle of the file called name, fail its syncs while
// failFile exists, if it is a value-log file.
func (n *node) wrap(fh fs.FileHandle, name string) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok || !strings.HasSuffix(name, ".vlog") {
		return fh
	}
	return &file{LoopbackFile: lf, flag: filepath.Join(n.RootData.Path, failFile)}
}

// file is a loopback file whose Fsync fails while flag exists.
type file struct {
	*fs.LoopbackFile
	flag string
}

// PassthroughFd says the file is not passed through: the kernel would then
// read, write and sync the backing file itself, and Fsync never be asked.
func (f *file) PassthroughFd() (int, bool) { return 0, false }

// Fsync fails with EIO while the flag file exists, and syncs otherwise.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if _, err := os.Stat(f.flag); err == nil {
		return syscall.EIO
	}
	return f.LoopbackFile.Fsync(ctx, flags)
}
