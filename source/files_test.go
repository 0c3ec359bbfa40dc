package source

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Credential files are read only when they are regular files (or symlinks
// to one) of at most the size asked for: a FIFO is refused at once rather
// than blocking the reader until someone writes to it.
func TestReadRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "..data")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		max        int64
		want       string // content, or the error it must mention
		fails      bool
	}{
		{"regular file", secret, 100, "s3cret\n", false},
		{"symlink to one", link, 100, "s3cret\n", false},
		{"exactly the limit", secret, 7, "s3cret\n", false},
		{"over the limit", secret, 6, "larger than 6 bytes", true},
		{"FIFO", fifo, 100, "not a regular file", true},
		{"folder", dir, 100, "not a regular file", true},
		{"missing", filepath.Join(dir, "missing"), 100, "no such file", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				data []byte
				err  error
			}
			done := make(chan result, 1)
			go func() { d, err := ReadRegularFile(tc.path, tc.max); done <- result{d, err} }()
			var r result
			select {
			case r = <-done:
			case <-time.After(time.Minute):
				t.Fatal("ReadRegularFile blocked")
			}
			if tc.fails {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
					t.Fatalf("err %v, want one mentioning %q", r.err, tc.want)
				}
				if strings.Contains(r.err.Error(), "s3cret") {
					t.Errorf("the error shows the content: %v", r.err)
				}
				return
			}
			if r.err != nil || string(r.data) != tc.want {
				t.Fatalf("got %q, %v; want %q", r.data, r.err, tc.want)
			}
		})
	}
}
