package gobuild

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// landlockABI returns the kernel's Landlock ABI version, or 0 when Landlock is not
// available (an old kernel, Landlock disabled at boot, a seccomp filter that refuses it).
func landlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// landlockWrites returns the filesystem rights that change something, as far as ABI
// version abi knows them: the rights a compile has only beneath its writable
// directories. Reading and executing stay allowed everywhere.
func landlockWrites(abi int) uint64 {
	rights := uint64(unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM)
	if abi >= 2 {
		rights |= unix.LANDLOCK_ACCESS_FS_REFER // linking and renaming across directories
	}
	if abi >= 3 {
		rights |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		rights |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV // ioctl on devices, a terminal's among them
	}
	return rights
}

// landlockFileRights are the rights that apply to a file (not a directory) in a rule.
const landlockFileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
	unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

// restrictThread confines the calling OS thread, and every process it starts from now
// on, to writing beneath dirs (and /dev/null). With ABI 4 it may not listen on TCP
// ports; with ABI 6 it may not signal processes, nor connect to abstract Unix sockets,
// outside its domain (slipway itself, other compiles; current kernels do not scope
// signals between the threads of one process, and where the first ABI 6 kernels did,
// the Go runtime only loses preemption signals sent from this thread). The caller must
// have locked its goroutine to the thread and must never unlock it: the thread is
// confined for good.
func restrictThread(abi int, dirs []string) error {
	writes := landlockWrites(abi)
	attr := unix.LandlockRulesetAttr{Handled_access_fs: writes}
	if abi >= 4 {
		attr.Handled_access_net = unix.LANDLOCK_ACCESS_NET_BIND_TCP
	}
	if abi >= 6 {
		attr.Scoped = unix.LANDLOCK_SCOPE_SIGNAL | unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
	}
	// A kernel with an older, shorter struct accepts this one: the fields it does not
	// know are zero.
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	ruleset := int(fd)
	defer unix.Close(ruleset)
	allow := func(path string, rights uint64) error {
		pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		defer unix.Close(pfd)
		rule := unix.LandlockPathBeneathAttr{Allowed_access: rights, Parent_fd: int32(pfd)}
		if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&rule)), 0, 0, 0); errno != 0 {
			return fmt.Errorf("landlock_add_rule %s: %w", path, errno)
		}
		return nil
	}
	for _, d := range dirs {
		if err := allow(d, writes); err != nil {
			return err
		}
	}
	if err := allow(os.DevNull, writes&landlockFileRights); err != nil {
		return err
	}
	// no_new_privs is required to restrict oneself without CAP_SYS_ADMIN, and keeps
	// the compile from gaining privileges through a set-user-ID program. Both are set
	// on this thread only.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); errno != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return nil
}

// diskFree returns the bytes and inodes free for unprivileged users on the filesystem
// of path; ok is false when that is unknown. A filesystem without an inode count
// (btrfs) reports inodes as 1.
func diskFree(path string) (bytes, inodes uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, false
	}
	inodes = st.Ffree
	if st.Files == 0 {
		inodes = 1
	}
	return st.Bavail * uint64(st.Bsize), inodes, true
}
