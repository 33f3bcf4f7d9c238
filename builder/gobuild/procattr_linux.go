package gobuild

import "syscall"

// processGroupAttr puts a child in a process group of its own, killed with slipway.
func processGroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
