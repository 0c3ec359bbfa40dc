package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a local folder must be quiet before Watch
// triggers.
const DefaultDebounce = 200 * time.Millisecond

// LocalOptions configure a Local source.
type LocalOptions struct {
	// Path is the folder to follow. ".git" folders in it are ignored.
	Path string
	// Dir is the work root this source owns, as in GitOptions: each
	// revision is copied into Dir/checkouts and published through
	// Dir/current, so readers never see a folder being edited. Dir may be
	// inside Path; it is then skipped.
	Dir string
	// MaxSize and MaxFiles cap the folder as in GitOptions.
	MaxSize  int64
	MaxFiles int
	// Debounce is the quiet time before Watch triggers; default
	// DefaultDebounce. A folder that keeps changing triggers at least
	// every 10 × Debounce.
	Debounce time.Duration
	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger
}

// Local is a Source that follows a plain folder (no git), for development
// and tests. Its revision is "sha256:<hex>" of the content: paths, file
// contents, the executable bit and symlink targets (symlinks are copied as
// symlinks, never followed).
type Local struct {
	opts    LocalOptions
	path    string // absolute
	skip    string // absolute Dir, skipped when inside path
	log     *slog.Logger
	pub     *publisher
	current atomic.Pointer[Artifact]
	// triggers counts triggers raised by Watch (sent or coalesced).
	triggers atomic.Int64
	mu       sync.Mutex // serializes Fetch
}

type localMeta struct {
	Path     string `json:"path"`
	Revision string `json:"revision"`
}

// NewLocal checks that Path is a folder and prepares Dir.
func NewLocal(opts LocalOptions) (*Local, error) {
	if opts.Path == "" {
		return nil, errors.New("local source: no folder (LocalOptions.Path) given")
	}
	if opts.Dir == "" {
		return nil, errors.New("local source: no work directory (LocalOptions.Dir) given")
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("local source %s: %w", opts.Path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("local source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local source: %s is not a folder", path)
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pub, err := openPublisher(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local source %s: %w", path, err)
	}
	l := &Local{opts: opts, path: path, skip: pub.root, pub: pub, log: opts.Logger.With("path", path)}
	var meta localMeta
	if pub.readMeta(&meta) && meta.Path == path && meta.Revision != "" {
		l.current.Store(&Artifact{Revision: meta.Revision, Dir: pub.dir(pub.current)})
	}
	return l, nil
}

// Current returns the last published artifact, or nil before the first
// successful Fetch.
func (l *Local) Current() *Artifact { return l.current.Load() }

// Fetch hashes the folder; if the content changed since the last Fetch it
// copies it into a fresh directory and publishes it. On error nothing is
// published and Current is unchanged.
func (l *Local) Fetch(ctx context.Context) (*Artifact, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := limits{maxSize: l.opts.MaxSize, maxFiles: l.opts.MaxFiles}
	rev, _, err := l.snapshot(ctx, "", lim)
	if err != nil {
		return nil, fmt.Errorf("reading local folder %s: %w", l.path, err)
	}
	if cur := l.current.Load(); cur != nil && cur.Revision == rev && dirExists(cur.Dir) {
		return cur, nil
	}
	staged, err := l.pub.stage()
	if err != nil {
		return nil, err
	}
	// The copy is hashed again: if the folder changed in between, the
	// revision describes what was copied.
	rev, files, err := l.snapshot(ctx, staged, lim)
	if err != nil {
		_ = os.RemoveAll(staged)
		return nil, fmt.Errorf("copying local folder %s: %w", l.path, err)
	}
	dir, err := l.pub.publish(staged, strings.TrimPrefix(rev, "sha256:")[:12], localMeta{Path: l.path, Revision: rev})
	if err != nil {
		_ = os.RemoveAll(staged)
		return nil, err
	}
	art := &Artifact{Revision: rev, Dir: dir}
	l.current.Store(art)
	l.log.Info("published", "revision", rev, "dir", dir, "files", files)
	return art, nil
}

// snapshot walks the folder (lexical order, symlinks not followed),
// hashes it and, when dst is set, copies it there.
func (l *Local) snapshot(ctx context.Context, dst string, lim limits) (string, int, error) {
	var root *os.Root
	if dst != "" {
		r, err := os.OpenRoot(dst)
		if err != nil {
			return "", 0, err
		}
		defer r.Close()
		root = r
	}
	h := sha256.New()
	files := 0
	var size int64
	record := func(kind, rel string, sum []byte) {
		h.Write([]byte(kind))
		h.Write([]byte(rel))
		h.Write([]byte{0})
		h.Write(sum)
	}
	err := filepath.WalkDir(l.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == l.path {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || p == l.skip) {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(l.path, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch mode := d.Type(); {
		case mode.IsDir():
			record("d ", rel, nil)
			if root != nil {
				return root.Mkdir(rel, 0o755)
			}
			return nil
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files++
			size += int64(len(target))
			if err := checkLimits(files, size, lim); err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(target))
			record("l ", rel, sum[:])
			if root != nil {
				return root.Symlink(target, rel)
			}
			return nil
		case mode.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files++
			size += fi.Size()
			if err := checkLimits(files, size, lim); err != nil {
				return err
			}
			kind, perm := "f ", os.FileMode(0o644)
			if fi.Mode()&0o111 != 0 {
				kind, perm = "x ", 0o755
			}
			sum, err := hashFile(p, root, rel, perm, lim.maxSize-(size-fi.Size()))
			if err != nil {
				return err
			}
			record(kind, rel, sum)
			return nil
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, mode)
		}
	})
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), files, nil
}

func checkLimits(files int, size int64, lim limits) error {
	if files > lim.maxFiles {
		return fmt.Errorf("%w: more than %d files (MaxFiles)", ErrTooLarge, lim.maxFiles)
	}
	if size > lim.maxSize {
		return fmt.Errorf("%w: more than %s of files (MaxSize)", ErrTooLarge, formatBytes(lim.maxSize))
	}
	return nil
}

// hashFile hashes a file and, with root set, copies it to rel there. It
// reads at most room bytes (the file may grow while it is read).
func hashFile(p string, root *os.Root, rel string, perm os.FileMode, room int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	var w io.Writer = h
	var out *os.File
	if root != nil {
		out, err = root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return nil, err
		}
		defer out.Close()
		w = io.MultiWriter(h, out)
	}
	n, err := io.Copy(w, io.LimitReader(f, room+1))
	if err != nil {
		return nil, err
	}
	if n > room {
		return nil, fmt.Errorf("%w: %s grew past the size limit while being read", ErrTooLarge, p)
	}
	if out != nil {
		if err := out.Close(); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}

// Watch raises a trigger when files under Path change: events are
// debounced (Debounce of quiet, at most 10 × Debounce after the first
// event) and each trigger is a non-blocking send, so a size-1 channel
// coalesces a burst into one pending trigger. It returns nil when ctx is
// done, or an error if the folder cannot be watched.
func (l *Local) Watch(ctx context.Context, trigger chan<- struct{}) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", l.path, err)
	}
	defer w.Close()
	if err := l.watchTree(w, l.path); err != nil {
		return fmt.Errorf("watching %s: %w", l.path, err)
	}
	d := &debouncer{quiet: l.opts.Debounce, max: 10 * l.opts.Debounce}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	schedule := func(due time.Time) { timer.Reset(time.Until(due)) }
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watching %s: the watcher stopped", l.path)
			}
			if l.ignored(ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					if err := l.watchTree(w, ev.Name); err != nil {
						l.log.Warn("cannot watch new folder", "folder", ev.Name, "error", err)
					}
				}
			}
			schedule(d.event(time.Now()))
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watching %s: the watcher stopped", l.path)
			}
			l.log.Warn("file watcher error; triggering to be safe", "error", err)
			schedule(d.event(time.Now()))
		case now := <-timer.C:
			fire, next := d.fire(now)
			switch {
			case fire:
				l.triggers.Add(1)
				select {
				case trigger <- struct{}{}:
				default: // a trigger is already pending
				}
			case !next.IsZero():
				schedule(next)
			}
		}
	}
}

// watchTree adds dir and its sub-folders to the watcher.
func (l *Local) watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != l.path && (d.Name() == ".git" || p == l.skip) {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}

// ignored reports events under Dir or a .git folder.
func (l *Local) ignored(name string) bool {
	if name == l.skip || strings.HasPrefix(name, l.skip+string(filepath.Separator)) {
		return true
	}
	rel, err := filepath.Rel(l.path, name)
	if err != nil {
		return false
	}
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if part == ".git" {
			return true
		}
	}
	return false
}
