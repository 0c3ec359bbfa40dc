package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// stageFiles writes n files all holding content into a new staged
// checkout.
func stageFiles(t *testing.T, p *publisher, n int, content string) string {
	t.Helper()
	dir, err := p.stage()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type testMeta struct {
	Revision string `json:"revision"`
}

// The current and the previous checkout are kept, older ones removed;
// current always points at the last one; a reopened publisher finds it;
// scratch space left by a crash is cleared.
func TestPublishKeepsCurrentAndPrevious(t *testing.T) {
	root := t.TempDir()
	p, err := openPublisher(root)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for i := range 4 {
		dir, err := p.publish(context.Background(), stageFiles(t, p, 1, strconv.Itoa(i)), "rev", testMeta{Revision: strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		if target, err := filepath.EvalSymlinks(filepath.Join(root, "current")); err != nil || target != dir {
			t.Fatalf("current -> %s, %v; want %s", target, err, dir)
		}
		if link, _ := os.Readlink(filepath.Join(root, "current")); filepath.IsAbs(link) {
			t.Errorf("current links to an absolute path %s; want a relative one so Dir can move", link)
		}
	}
	for i, dir := range dirs {
		_, err := os.Stat(dir)
		_, merr := os.Stat(dir + ".json")
		if keep := i >= 2; keep != (err == nil) || keep != (merr == nil) {
			t.Errorf("checkout %d (%s): exists=%v meta=%v, want kept=%v", i, dir, err == nil, merr == nil, keep)
		}
	}
	if dirs[0] == dirs[1] {
		t.Error("two publishes under one name")
	}
	// A crash left scratch data; reopening clears it and finds current.
	if err := os.WriteFile(filepath.Join(root, "tmp", "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p2, err := openPublisher(root)
	if err != nil {
		t.Fatal(err)
	}
	var meta testMeta
	if !p2.readMeta(&meta) || meta.Revision != "3" || p2.dir(p2.current) != dirs[3] {
		t.Errorf("reopened: current %q meta %+v", p2.current, meta)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp", "junk")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("scratch not cleared: %v", err)
	}
}

// A publisher told to keep more keeps that many of the newest checkouts,
// for readers that render an older one while newer ones are published.
func TestPublishKeepsMore(t *testing.T) {
	p, err := openPublisher(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p.keep = 4
	var dirs []string
	for i := range 7 {
		dir, err := p.publish(context.Background(), stageFiles(t, p, 1, strconv.Itoa(i)), "rev", testMeta{Revision: strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	for i, dir := range dirs {
		if _, err := os.Stat(dir); (i >= 3) != (err == nil) {
			t.Errorf("checkout %d: exists=%v, want kept=%v", i, err == nil, i >= 3)
		}
	}
}

// Readers racing a publisher that never stops: every read through the
// current symlink sees a complete checkout of one revision (never a
// missing link, never a mix or an empty folder), and a checkout a reader
// resolved only disappears after later revisions were published. Run with
// -race.
func TestPublishConcurrentReaders(t *testing.T) {
	const files, revisions, readers = 8, 100, 4
	root := t.TempDir()
	p, err := openPublisher(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.publish(context.Background(), stageFiles(t, p, files, "0"), "rev", testMeta{Revision: "0"}); err != nil {
		t.Fatal(err)
	}
	var published atomic.Int64 // revisions fully published
	var reads, vanished atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := readOnce(root, files, &published, &vanished); err != nil {
					errc <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := 1; i <= revisions; i++ {
		staged := stageFiles(t, p, files, strconv.Itoa(i))
		if _, err := p.publish(context.Background(), staged, "rev", testMeta{Revision: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		published.Store(int64(i))
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Fatal("the readers read nothing")
	}
	t.Logf("%d consistent reads, %d of a checkout removed after later publishes", reads.Load(), vanished.Load())
	entries, err := os.ReadDir(filepath.Join(root, "checkouts"))
	if err != nil || len(entries) != 4 { // two checkouts, two .json
		t.Errorf("checkouts left: %d (%v), want current and previous", len(entries), err)
	}
}

// readOnce resolves current once and reads every file of that checkout.
func readOnce(root string, files int, published, vanished *atomic.Int64) error {
	before := published.Load()
	link, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil {
		return fmt.Errorf("current symlink missing: %w", err)
	}
	dir := filepath.Join(root, link)
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) != files {
		// A checkout two revisions old is being removed while it is
		// listed: allowed once a later revision was published, like a
		// checkout that vanished.
		if published.Load() == before {
			return fmt.Errorf("%s has %d files, want %d: a partial checkout was visible", dir, len(entries), files)
		}
		vanished.Add(1)
		return nil
	}
	want := ""
	for i := 0; err == nil && i < files; i++ {
		var b []byte
		b, err = os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%d", i)))
		if err == nil {
			if want == "" {
				want = string(b)
			} else if string(b) != want {
				return fmt.Errorf("%s mixes revisions %q and %q", dir, want, b)
			}
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Allowed only once a later revision was published (the
		// checkout then stops being current; two later ones remove it).
		if published.Load() == before {
			return fmt.Errorf("%s disappeared while it was current", dir)
		}
		vanished.Add(1)
		return nil
	}
	return err
}

// F7: before the rename that publishes a checkout, every file and
// directory in it is synced; then the rename, the record and current are
// made durable, in that order.
func TestPublishSyncsBeforeRename(t *testing.T) {
	root := t.TempDir()
	p, err := openPublisher(root)
	if err != nil {
		t.Fatal(err)
	}
	var synced []string
	p.fsync = func(f *os.File) error {
		synced = append(synced, f.Name())
		return f.Sync()
	}
	staged, err := p.stage()
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, staged, map[string]string{"a": "1", "sub/b": "2", "sub/deeper/c": "3"})
	if err := os.Symlink("a", filepath.Join(staged, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.publish(context.Background(), staged, "rev", testMeta{Revision: "1"}); err != nil {
		t.Fatal(err)
	}
	index := func(path string) int {
		for i, s := range synced {
			if s == path {
				return i
			}
		}
		return -1
	}
	last := -1
	for _, rel := range []string{".", "a", "sub", "sub/b", "sub/deeper", "sub/deeper/c"} {
		i := index(filepath.Join(staged, filepath.FromSlash(rel)))
		if i < 0 {
			t.Errorf("%s was not synced before the checkout was published (synced: %v)", rel, synced)
		}
		last = max(last, i)
	}
	checkouts, meta, current := index(p.checkouts), -1, index(root)
	for i, s := range synced {
		if strings.HasPrefix(filepath.Base(s), "meta-") {
			meta = i
		}
	}
	if !(last < checkouts && checkouts < meta && meta < current) {
		t.Errorf("sync order: checkout up to %d, checkouts dir %d, record %d, root %d; want in that order (synced: %v)",
			last, checkouts, meta, current, synced)
	}
}

// The record's digest is checked by verify: an edited checkout fails and
// stops being current.
func TestPublishVerify(t *testing.T) {
	root := t.TempDir()
	p, err := openPublisher(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.publish(context.Background(), stageFiles(t, p, 3, "x"), "rev", testMeta{Revision: "1"}); err != nil {
		t.Fatal(err)
	}
	p2, err := openPublisher(root)
	if err != nil {
		t.Fatal(err)
	}
	var meta testMeta
	if !p2.readMeta(&meta) || meta.Revision != "1" {
		t.Fatalf("readMeta: %+v", meta)
	}
	if err := p2.verify(context.Background()); err != nil {
		t.Errorf("an intact checkout fails: %v", err)
	}
	for _, damage := range []func(dir string) error{
		func(dir string) error { return os.Truncate(filepath.Join(dir, "f0"), 0) },
		func(dir string) error { return os.Remove(filepath.Join(dir, "f1")) },
		func(dir string) error { return os.WriteFile(filepath.Join(dir, "extra"), nil, 0o644) },
		func(dir string) error { return os.Chmod(filepath.Join(dir, "f2"), 0o755) },
	} {
		dir, err := p.publish(context.Background(), stageFiles(t, p, 3, "x"), "rev", testMeta{Revision: "1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := damage(dir); err != nil {
			t.Fatal(err)
		}
		p3, err := openPublisher(root)
		if err != nil {
			t.Fatal(err)
		}
		if !p3.readMeta(&meta) {
			t.Fatal("readMeta failed")
		}
		if err := p3.verify(context.Background()); err == nil || p3.current != "" {
			t.Errorf("a damaged checkout passes: %v", err)
		}
	}
}
