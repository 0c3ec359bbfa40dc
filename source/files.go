package source

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxCredentialFile bounds a credential file tether reads: a password,
// token, key, CA bundle, webhook secret or docker config. Real ones take a
// few KiB; a CA bundle of every public root about 200 KiB.
const MaxCredentialFile = 1 << 20

// ReadRegularFile reads the regular file at path (a symlink to one, as a
// mounted Secret or ConfigMap is, will do), at most max bytes. Anything
// else is refused before it is read: a FIFO or a device would block the
// open or the read (and with it a reload, a fetch or the agent's
// shutdown), and a file over max is an error rather than a partial read.
// Credential files are read with it every time they are used; errors name
// the file, never its content.
func ReadRegularFile(path string, max int64) ([]byte, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	// O_NONBLOCK: should the path become a FIFO between the Stat and the
	// open, the open does not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("larger than %d bytes", max)}
	}
	return data, nil
}
