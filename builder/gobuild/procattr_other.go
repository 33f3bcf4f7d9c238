//go:build unix && !linux

package gobuild

import "syscall"

// processGroupAttr puts a child in a process group of its own.
func processGroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
