package main

import "syscall"

// redisProcAttr puts the private redis-server in a process group of its own, so that the
// terminal's Ctrl-C reaches serve alone (which stops the server once it has drained), and
// has it told to exit (SIGTERM, which writes its data) if serve dies.
func redisProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
