package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newLocal(t *testing.T, opts LocalOptions) *Local {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l, err := NewLocal(opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The revision is a content hash: stable while nothing changes (no new
// copy is made), different when content, a name, the executable bit or a
// symlink target changes; the copy holds the content, symlinks as symlinks.
func TestLocalFetch(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.yaml": "a: 1\n", "base/b.yaml": "b: 1\n", ".git/HEAD": "ref: x\n"})
	if err := os.Symlink("../../../etc/passwd", filepath.Join(src, "escape")); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(src, ".tether") // Dir inside Path is skipped
	l := newLocal(t, LocalOptions{Path: src, Dir: work})
	ctx := context.Background()
	first, err := l.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.Revision, "sha256:") || len(first.Revision) != len("sha256:")+64 || first.Commit != (Commit{}) {
		t.Errorf("artifact %+v", first)
	}
	if b, err := os.ReadFile(filepath.Join(first.Dir, "base/b.yaml")); err != nil || string(b) != "b: 1\n" {
		t.Errorf("copy: %q %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(first.Dir, "escape")); err != nil || target != "../../../etc/passwd" {
		t.Errorf("symlink copied as %q, %v", target, err)
	}
	for _, skipped := range []string{".git", ".tether"} {
		if _, err := os.Lstat(filepath.Join(first.Dir, skipped)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was copied (%v)", skipped, err)
		}
	}
	again, err := l.Fetch(ctx)
	if err != nil || again != first {
		t.Fatalf("unchanged folder: %+v, %v; want the same artifact", again, err)
	}
	seen := map[string]bool{first.Revision: true}
	change := func(what string, f func()) {
		t.Helper()
		f()
		art, err := l.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[art.Revision] {
			t.Errorf("%s: revision %s seen before", what, art.Revision)
		}
		seen[art.Revision] = true
	}
	change("content", func() { writeFiles(t, src, map[string]string{"a.yaml": "a: 2\n"}) })
	change("new file", func() { writeFiles(t, src, map[string]string{"c.yaml": ""}) })
	change("rename", func() {
		if err := os.Rename(filepath.Join(src, "c.yaml"), filepath.Join(src, "d.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	change("executable bit", func() {
		if err := os.Chmod(filepath.Join(src, "a.yaml"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	change("symlink target", func() {
		_ = os.Remove(filepath.Join(src, "escape"))
		if err := os.Symlink("a.yaml", filepath.Join(src, "escape")); err != nil {
			t.Fatal(err)
		}
	})
	// Going back to earlier content gives the earlier revision.
	writeFiles(t, src, map[string]string{".git/HEAD": "changed\n"}) // ignored
	last := l.Current()
	if art, err := l.Fetch(ctx); err != nil || art != last {
		t.Errorf("a change under .git made a new revision: %+v %v", art, err)
	}
	// A restarted source resumes.
	l2 := newLocal(t, LocalOptions{Path: src, Dir: work})
	if art, err := l2.Fetch(ctx); err != nil || art.Revision != last.Revision || art.Dir != last.Dir {
		t.Errorf("restarted: %+v %v, want %+v", art, err, last)
	}
}

func TestLocalLimits(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a": "12345", "b": "67890"})
	huge := filepath.Join(t.TempDir(), "huge")
	if err := os.WriteFile(huge, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink to a large file counts its target's length only.
	if err := os.Symlink(huge, filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	ok := newLocal(t, LocalOptions{Path: src, MaxSize: 10 + int64(len(huge)), MaxFiles: 3})
	if _, err := ok.Fetch(context.Background()); err != nil {
		t.Errorf("within limits: %v", err)
	}
	for _, tc := range []struct {
		opts LocalOptions
		want string
	}{
		{LocalOptions{Path: src, MaxSize: 9}, "more than 9 bytes of files (MaxSize)"},
		{LocalOptions{Path: src, MaxFiles: 2}, "more than 2 files (MaxFiles)"},
	} {
		l := newLocal(t, tc.opts)
		_, err := l.Fetch(context.Background())
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), src) {
			t.Errorf("error %v, want ErrTooLarge %q naming the folder", err, tc.want)
		}
		if l.Current() != nil {
			t.Error("published over the limit")
		}
	}
	if _, err := NewLocal(LocalOptions{Path: filepath.Join(src, "a"), Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "is not a folder") {
		t.Errorf("a file as Path: %v", err)
	}
	if _, err := NewLocal(LocalOptions{Path: filepath.Join(src, "nope"), Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a missing Path: %v", err)
	}
}

// watch runs Watch on l and counts the triggers it sends, draining a
// size-1 channel as the sync loop would.
func watch(t *testing.T, l *Local) *atomic.Int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	trigger := make(chan struct{}, 1)
	var got atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- l.Watch(ctx, trigger) }()
	go func() {
		for {
			select {
			case <-trigger:
				got.Add(1)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return &got
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled waits until the watcher has had no pending trigger for a while:
// the debouncer fires at the latest 10 × Debounce after an event, so after
// that long with the count unchanged, no trigger is still to come from
// the writes made before.
func settled(t *testing.T, l *Local, got *atomic.Int64) int64 {
	t.Helper()
	quiet := 12 * l.opts.Debounce
	last, since := got.Load(), time.Now()
	for time.Since(since) < quiet {
		time.Sleep(l.opts.Debounce / 4)
		if n := got.Load(); n != last {
			last, since = n, time.Now()
		}
	}
	return last
}

func TestLocalWatchOneWriteOneTrigger(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.yaml": "a: 1\n"})
	l := newLocal(t, LocalOptions{Path: src, Debounce: 50 * time.Millisecond})
	got := watch(t, l)
	waitWatching(t, l, src, got)
	base := settled(t, l, got)

	writeFiles(t, src, map[string]string{"a.yaml": "a: 2\n"})
	eventually(t, "a trigger after one write", func() bool { return got.Load() > base })
	if n := settled(t, l, got) - base; n != 1 {
		t.Errorf("one write raised %d triggers, want 1", n)
	}
	// A file in a folder created after Watch started is seen too.
	writeFiles(t, src, map[string]string{"new/dir/x.yaml": "x: 1\n"})
	eventually(t, "a trigger for a new folder", func() bool { return got.Load() > base+1 })
	before := settled(t, l, got)
	writeFiles(t, src, map[string]string{"new/dir/x.yaml": "x: 2\n"})
	eventually(t, "a trigger for a write in the new folder", func() bool { return got.Load() > before })
}

func TestLocalWatchBurstCoalesces(t *testing.T) {
	src := t.TempDir()
	l := newLocal(t, LocalOptions{Path: src, Debounce: 100 * time.Millisecond})
	got := watch(t, l)
	waitWatching(t, l, src, got)
	base := settled(t, l, got)
	counted := l.triggers.Load()
	for i := range 100 {
		writeFiles(t, src, map[string]string{fmt.Sprintf("f%d.yaml", i%10): fmt.Sprintf("i: %d\n", i)})
	}
	eventually(t, "a trigger after the burst", func() bool { return got.Load() > base })
	n := settled(t, l, got) - base
	t.Logf("100 writes raised %d triggers received (%d raised by Watch)", n, l.triggers.Load()-counted)
	if n < 1 || n > 5 {
		t.Errorf("100 writes in a burst raised %d triggers, want a few (1-5)", n)
	}
}

// waitWatching makes sure the watcher is running: it writes a probe file
// until a trigger arrives (Watch adds its watches before it reads events,
// but it starts in its own goroutine).
func waitWatching(t *testing.T, l *Local, src string, got *atomic.Int64) {
	t.Helper()
	probe := filepath.Join(src, ".probe")
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; got.Load() == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never triggered")
		}
		if err := os.WriteFile(probe, []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(l.opts.Debounce * 3)
	}
	if err := os.Remove(probe); err != nil {
		t.Fatal(err)
	}
}
