// Package nsenter runs this binary again inside the user and network
// namespaces of another process (a rootless node container's init).
//
// Joining a user namespace with setns(2) is refused for a multi-threaded
// process, and a Go process is multi-threaded before main() runs. So the
// child does the setns() calls in a C constructor (nsenter_cgo.go, runc's
// approach) before the Go runtime starts, or, in a build without cgo, is
// started through util-linux nsenter(1).
package nsenter

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

const (
	pidEnv  = "_KSI_NSENTER_PID"
	doneEnv = "_KSI_NSENTER_DONE"
)

// Reexeced reports whether this process was started by Command; a child that
// was started but did not switch namespaces must never re-execute again.
func Reexeced() bool { return os.Getenv(pidEnv) != "" || os.Getenv(doneEnv) != "" }

// Command returns a command that runs this binary with args inside the user
// and network namespaces of pid. It inherits stdout and stderr.
func Command(pid int, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "_KSI_NSENTER_") {
			env = append(env, e)
		}
	}
	var cmd *exec.Cmd
	if Cgo {
		cmd = exec.Command(self, args...)
		env = append(env, pidEnv+"="+strconv.Itoa(pid))
	} else {
		nsargs := []string{"--user", "--net", "--target", strconv.Itoa(pid), "--preserve-credentials", "--", self}
		cmd = exec.Command("nsenter", append(nsargs, args...)...)
		env = append(env, doneEnv+"=1")
	}
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	return cmd, nil
}

// Run runs Command(pid, args...) to completion; extra files become fd 3, 4, ...
func Run(pid int, extra []*os.File, args ...string) error {
	cmd, err := Command(pid, args...)
	if err != nil {
		return err
	}
	cmd.ExtraFiles = extra
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s in the namespaces of pid %d: %w", args[0], pid, err)
	}
	return nil
}
