package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/zonegate/zonegate/directory"
)

const hashPasswordUsage = `usage: zonegate hash-password [--plaintext <password>]

Prints an argon2id hash (PHC string) of a password, for the password field of a user in
the zonegate users file. Without --plaintext the password is read from the terminal
(twice, not echoed) or from the first line of standard input.`

// hashPassword runs the hash-password subcommand and returns the exit code.
func hashPassword(args []string, stdin *os.File, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, hashPasswordUsage) }
	plaintext := fs.String("plaintext", "", "the password to hash (visible in the process list; prefer the prompt)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, nil
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2, nil
	}
	pw := *plaintext
	if pw == "" {
		var err error
		if pw, err = readPassword(stdin, stderr); err != nil {
			return 1, err
		}
	}
	if pw == "" {
		return 1, errors.New("empty password")
	}
	h, err := directory.HashPassword(pw)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(stdout, h)
	return 0, nil
}

func readPassword(stdin *os.File, stderr io.Writer) (string, error) {
	fd := int(stdin.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fmt.Fprint(stderr, "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(stderr, "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords differ")
	}
	return string(a), nil
}
