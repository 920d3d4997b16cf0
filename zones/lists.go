package zones

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxListFileSize bounds a list file, so a wrong path (a disk image, a log) cannot exhaust
// memory.
const maxListFileSize = 64 << 20

// span is the inclusive interval [lo, hi] of addresses of one family.
type span[K any] struct{ lo, hi K }

// list is the parsed contents of a list file.
type list struct {
	v4 []span[uint32]
	v6 []span[u128]
}

func (l *list) len() int { return len(l.v4) + len(l.v6) }

// parseList parses the contents of a list file: one entry per line as ParseEntry reads it (an
// address, a CIDR or a range), with everything from a '#' or ';' to the end of the line a
// comment; blank lines and a leading UTF-8 byte order mark are ignored. Line ends may be "\n"
// or "\r\n". The error names the line, numbered from 1:
//
//	line 3 ("10.0.0/8"): bad CIDR: ...
func parseList(data []byte) (*list, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	l := &list{}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		if i := bytes.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		from, to, err := ParseEntry(string(line))
		if err != nil {
			return nil, fmt.Errorf("line %d (%.64q): %w", n, line, err)
		}
		if from.Is4() {
			l.v4 = append(l.v4, span[uint32]{v4key(from), v4key(to)})
		} else {
			l.v6 = append(l.v6, span[u128]{v6key(from), v6key(to)})
		}
	}
	return l, nil
}

// readFile reads a list file or a database: at most limit bytes, and the file's FileInfo taken
// from the open file, so it describes what was read.
func readFile(path string, limit int64) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, unwrapPath(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, unwrapPath(err)
	}
	if fi.IsDir() {
		return nil, nil, errors.New("is a directory")
	}
	if !fi.Mode().IsRegular() {
		// A FIFO or a device could block the reader forever.
		return nil, nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, nil, fmt.Errorf("file is larger than %d MiB", limit>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, unwrapPath(err)
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("file is larger than %d MiB", limit>>20)
	}
	return data, fi, nil
}

// unwrapPath drops the path from an *fs.PathError, whose text repeats it, keeping what
// errors.Is needs (fs.ErrNotExist, fs.ErrPermission).
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// loadList reads and parses a list file. A file of zero bytes is an error, since a file being
// rewritten in place looks like that; a file meant to list no address holds a comment.
func loadList(path string) (*list, os.FileInfo, error) {
	data, fi, err := readFile(path, maxListFileSize)
	if err != nil {
		return nil, nil, err
	}
	if len(data) == 0 {
		return nil, fi, errors.New("file is empty (to list no address on purpose, write a comment line)")
	}
	l, err := parseList(data)
	if err != nil {
		return nil, fi, err
	}
	return l, fi, nil
}
