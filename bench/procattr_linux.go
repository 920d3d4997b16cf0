//go:build linux

package main

import "syscall"

// childProcAttr makes the kernel send SIGTERM to a child when bench dies, even by SIGKILL, so
// no zonegate or wrk outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
