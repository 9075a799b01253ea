//go:build linux && cgo

package nsenter

/*
// Joining an existing USER namespace with setns(2) is refused (EINVAL) for a
// multi-threaded process, and a Go process is multi-threaded before main()
// runs, so runtime.LockOSThread() is not enough. Like runc's nsenter, we do the
// setns() calls in a C constructor, which runs before the Go runtime starts
// any thread. Every thread the runtime creates later inherits the namespaces.
//
// Triggered only when _KSI_NSENTER_PID is set (Command sets it when a helper
// re-executes itself); otherwise this is a no-op.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ksi_nsentered = 0;
static int ksi_get_nsentered(void) { return ksi_nsentered; }

static int ksi_open_ns(const char *pid, const char *ns) {
	char path[128];
	snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ksi nsenter: open %s: %s\n", path, strerror(errno));
		_exit(125);
	}
	return fd;
}

static int ksi_same_ns(int fd, const char *self) {
	struct stat a, b;
	if (fstat(fd, &a) < 0 || stat(self, &b) < 0)
		return 0;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

__attribute__((constructor)) static void ksi_nsenter(void) {
	const char *pid = getenv("_KSI_NSENTER_PID");
	if (pid == NULL || *pid == '\0')
		return;
	int ufd = ksi_open_ns(pid, "user");
	int nfd = ksi_open_ns(pid, "net");
	// User namespace first: it grants CAP_SYS_ADMIN/CAP_NET_ADMIN over the
	// network namespace it owns. Skip it if we are already in it (setns into
	// the own user ns is EINVAL), e.g. when run as real root.
	if (!ksi_same_ns(ufd, "/proc/self/ns/user") && setns(ufd, CLONE_NEWUSER) < 0) {
		fprintf(stderr, "ksi nsenter: setns(user of pid %s): %s\n", pid, strerror(errno));
		_exit(125);
	}
	if (setns(nfd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "ksi nsenter: setns(net of pid %s): %s\n", pid, strerror(errno));
		_exit(125);
	}
	close(ufd);
	close(nfd);
	// Read by Entered(). (A setenv() here would NOT be seen by os.Getenv:
	// the Go runtime keeps its own copy of the initial environment.)
	ksi_nsentered = 1;
}
*/
import "C"

// Cgo reports that this binary can enter namespaces by itself.
const Cgo = true

// Entered reports whether the constructor above switched namespaces.
func Entered() bool { return C.ksi_get_nsentered() == 1 }
