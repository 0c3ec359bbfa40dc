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
		{LocalOptions{Path: src, MaxFiles: 2}, "more than 2 files and directories (MaxFiles)"},
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

// F14: symlinks are resolved before the folder is walked and before the
// work root is looked for in it: a Path that is a symlink is followed to
// its folder (the walk does not follow symlinks, so it would find an
// empty folder), and a Dir inside Path named through a symlink is still
// skipped (else each checkout would copy the ones before it).
func TestLocalResolvesSymlinks(t *testing.T) {
	real := t.TempDir()
	writeFiles(t, real, map[string]string{"a.yaml": "a: 1\n"})
	link := filepath.Join(t.TempDir(), "app")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := newLocal(t, LocalOptions{Path: link})
	art, err := l.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(art.Dir, "a.yaml")); err != nil || string(b) != "a: 1\n" {
		t.Errorf("Path through a symlink: a.yaml = %q, %v", b, err)
	}

	l2 := newLocal(t, LocalOptions{Path: real, Dir: filepath.Join(link, ".tether")})
	first, err := l2.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(first.Dir); len(got) != 1 || got[0] != "a.yaml" {
		t.Errorf("Dir named through a symlink was copied: the checkout holds %v", got)
	}
	if again, err := l2.Fetch(ctx); err != nil || again != first {
		t.Errorf("unchanged folder: %+v, %v; want the same artifact", again, err)
	}
}

// F14: a folder that changes between the two reads of a Fetch (the hash,
// then the copy) is read again, and published only once two reads agree;
// one that keeps changing is not published at all.
func TestLocalDoesNotPublishMidEdit(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.yaml": "v: 0\n", "b.yaml": "v: 0\n"})
	ctx := context.Background()
	l := newLocal(t, LocalOptions{Path: src, Debounce: time.Millisecond})
	edits := 0
	l.betweenReads = func() {
		if edits < 2 {
			edits++
			writeFiles(t, src, map[string]string{"a.yaml": fmt.Sprintf("v: %d\n", edits)})
		}
	}
	art, err := l.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := digestTree(ctx, art.Dir, nil)
	if err != nil || digest != art.Revision {
		t.Errorf("the checkout's digest is %s (%v), its revision %s", digest, err, art.Revision)
	}
	if b, _ := os.ReadFile(filepath.Join(art.Dir, "a.yaml")); string(b) != "v: 2\n" {
		t.Errorf("a.yaml = %q, want the content after the edits", b)
	}

	restless := newLocal(t, LocalOptions{Path: src, Debounce: time.Millisecond})
	restless.betweenReads = func() {
		edits++
		writeFiles(t, src, map[string]string{"b.yaml": fmt.Sprintf("v: %d\n", edits)})
	}
	if _, err := restless.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "changed while it was being copied, 3 times in a row") {
		t.Errorf("a folder that keeps changing: %v", err)
	}
	if restless.Current() != nil || len(listDir(filepath.Join(restless.pub.root, "checkouts"))) != 0 {
		t.Errorf("published: %+v", restless.Current())
	}
}

// F7: a restarted Local source resumes only a checkout that still holds
// what was published.
func TestLocalResumeChecksTheCheckout(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.yaml": "a: 1\n"})
	dir := t.TempDir()
	first, err := newLocal(t, LocalOptions{Path: src, Dir: dir}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cur := newLocal(t, LocalOptions{Path: src, Dir: dir}).Current(); cur == nil || cur.Dir != first.Dir {
		t.Fatalf("an intact checkout was not resumed: %+v", cur)
	}
	if err := os.Truncate(filepath.Join(first.Dir, "a.yaml"), 0); err != nil {
		t.Fatal(err)
	}
	l := newLocal(t, LocalOptions{Path: src, Dir: dir})
	if cur := l.Current(); cur != nil {
		t.Errorf("a damaged checkout was resumed: %+v", cur)
	}
	art, err := l.Fetch(context.Background())
	if err != nil || art.Dir == first.Dir || art.Revision != first.Revision {
		t.Fatalf("after a damaged checkout: %+v, %v", art, err)
	}
	if b, _ := os.ReadFile(filepath.Join(art.Dir, "a.yaml")); string(b) != "a: 1\n" {
		t.Errorf("a.yaml = %q", b)
	}
}
