//go:build unix

package interop

import (
	"os/exec"
	"syscall"
)

// killProcessGroup makes the command the leader of its own process group
// and, on cancellation, kills the whole group: fetchmail and mpop start
// MDAs and shells that would otherwise outlive a timed-out test.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
