//go:build unix && !linux

package main

import "syscall"

// redisProcAttr puts the private redis-server in a process group of its own, so that the
// terminal's Ctrl-C reaches serve alone, which stops the server once it has drained.
func redisProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
