//go:build !linux

package main

import "syscall"

// childProcAttr is nil where the kernel cannot stop children with their parent; bench still
// stops them itself on every exit it sees.
func childProcAttr() *syscall.SysProcAttr { return nil }
