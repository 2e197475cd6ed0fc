package log_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/intermesh/intermesh/log"
)

// faultFSEnv names "backing:mountpoint" when the test binary runs as the
// fault-injecting file system of TestAFailedValueLogSyncFailsTheWrite.
const faultFSEnv = "INTERMESH_FAULT_FS"

// failSyncFile is the file whose presence in the backing directory makes
// the fault-injecting file system fail every fsync of a value-log file.
const failSyncFile = "FAIL_VLOG_SYNC"

// A write whose values Badger put in its value log, and could not sync
// there, fails, and so does every write after it, even once syncs succeed
// again: Badger v4.9 only logs that failure and commits. The log's
// directory is on a FUSE file system served by another process (this test
// binary), which fails the fsync (and so the msync) of .vlog files while
// failSyncFile exists.
func TestAFailedValueLogSyncFailsTheWrite(t *testing.T) {
	backing, mnt := t.TempDir(), t.TempDir()
	serveFaultFS(t, backing, mnt)
	l, err := log.Open(context.Background(), log.Options{
		Dir:    filepath.Join(mnt, "store"),
		Logger: slog.New(slog.DiscardHandler),
		// Every record's bytes go to the value log.
		TuneBadger: func(o badger.Options) badger.Options { return o.WithValueThreshold(64) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	payload := []byte(strings.Repeat("x", 300))
	if _, err := l.Append(ctx, log.Record{Kind: "Profile", Identifier: "a", Payload: payload}); err != nil {
		t.Fatalf("append before the fault: %v", err)
	}
	if err := os.WriteFile(filepath.Join(backing, failSyncFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = l.Append(ctx, log.Record{Kind: "Profile", Identifier: "b", Payload: payload})
	if !errors.Is(err, log.ErrNotDurable) {
		t.Fatalf("append while the value log's sync fails: %v, want ErrNotDurable", err)
	}
	if err := os.Remove(filepath.Join(backing, failSyncFile)); err != nil {
		t.Fatal(err)
	}
	_, err = l.Append(ctx, log.Record{Kind: "Profile", Identifier: "c", Payload: payload})
	if !errors.Is(err, log.ErrNotDurable) {
		t.Fatalf("append after a failed sync, once syncs succeed again: %v, want ErrNotDurable", err)
	}
	if !errors.Is(l.Durability(), log.ErrNotDurable) {
		t.Fatalf("Durability() = %v, want ErrNotDurable", l.Durability())
	}
	if got := l.Size(); got != 1 {
		t.Fatalf("size %d after the failed writes, want 1", got)
	}
}

// serveFaultFS mounts the fault-injecting file system of backing on mnt in
// a child process (a FUSE server in the process that maps the files would
// deadlock on its own page faults), and unmounts it when t ends.
func serveFaultFS(t *testing.T, backing, mnt string) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skipf("needs /dev/fuse and root to mount a FUSE file system (stat: %v, euid %d)", err, os.Geteuid())
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), faultFSEnv+"="+backing+":"+mnt)
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
			t.Errorf("fault file system: %v", err)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "mounted\n" {
		t.Fatalf("fault file system did not mount: %q, %v", line, err)
	}
}

// runFaultFS serves the fault-injecting file system named by faultFSEnv
// until standard input closes, then unmounts it.
func runFaultFS(spec string) error {
	backing, mnt, ok := strings.Cut(spec, ":")
	if !ok {
		return fmt.Errorf("%s=%q: want backing:mountpoint", faultFSEnv, spec)
	}
	loopback, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return err
	}
	root := &faultNode{loopback.(*fs.LoopbackNode)}
	server, err := fs.Mount(mnt, root, &fs.Options{
		MountOptions: fuse.MountOptions{DirectMountStrict: true, FsName: "faultfs"},
	})
	if err != nil {
		return err
	}
	fmt.Println("mounted")
	io.Copy(io.Discard, os.Stdin)
	for range 50 {
		if err = server.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// faultNode is a loopback node whose value-log files fail fsync while the
// backing directory holds failSyncFile.
type faultNode struct{ *fs.LoopbackNode }

// WrapChild makes the nodes below a faultNode faultNodes too.
func (n *faultNode) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &faultNode{ops.(*fs.LoopbackNode)}
}

// Open opens the file as the loopback does, with syncs that may fail.
func (n *faultNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	return n.wrap(fh, n.Path(nil)), ff, errno
}

// Create creates the file as the loopback does, with syncs that may fail.
func (n *faultNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return inode, n.wrap(fh, name), ff, errno
}

// wrap makes fh, the handle of the file called name, fail its syncs while
// failSyncFile exists, if it is a value-log file.
func (n *faultNode) wrap(fh fs.FileHandle, name string) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok || !strings.HasSuffix(name, ".vlog") {
		return fh
	}
	return &faultFile{LoopbackFile: lf, flag: filepath.Join(n.RootData.Path, failSyncFile)}
}

// faultFile is a loopback file whose Fsync fails while flag exists.
type faultFile struct {
	*fs.LoopbackFile
	flag string
}

// PassthroughFd says the file is not passed through: the kernel would then
// read, write and sync the backing file itself, and Fsync never be asked.
func (f *faultFile) PassthroughFd() (int, bool) { return 0, false }

// Fsync fails with EIO while the flag file exists, and syncs otherwise.
func (f *faultFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if _, err := os.Stat(f.flag); err == nil {
		return syscall.EIO
	}
	return f.LoopbackFile.Fsync(ctx, flags)
}
