package source

import (
	"context"
	"crypto/sha256"
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
	path    string // absolute, symlinks not resolved (they are per Fetch)
	log     *slog.Logger
	pub     *publisher
	current atomic.Pointer[Artifact]
	// triggers counts triggers raised by Watch (sent or coalesced).
	triggers atomic.Int64
	mu       sync.Mutex // serializes Fetch
	// betweenReads, when set (by tests), runs between the two reads of
	// the folder that a Fetch compares.
	betweenReads func()
}

// localReads is how many times Fetch reads a folder that keeps changing
// before it gives up.
const localReads = 3

type localMeta struct {
	Path     string `json:"path"`
	Revision string `json:"revision"`
}

// NewLocal checks that Path is a folder and prepares Dir. A checkout that
// Dir already holds for Path is resumed if its content still matches what
// was published.
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
	if opts.MaxSize > MaxSizeLimit {
		return nil, fmt.Errorf("local source %s: MaxSize %s is over the limit of %s", path, formatBytes(opts.MaxSize), formatBytes(MaxSizeLimit))
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
	l := &Local{opts: opts, path: path, pub: pub, log: opts.Logger.With("path", path)}
	var meta localMeta
	if pub.readMeta(&meta) && meta.Path == path && meta.Revision != "" {
		if err := pub.verify(context.Background()); err != nil {
			l.log.Warn("not resuming from the published checkout; copying again", "revision", meta.Revision, "error", err.Error())
		} else {
			l.current.Store(&Artifact{Revision: meta.Revision, Dir: pub.dir(pub.current)})
		}
	}
	return l, nil
}

// Current returns the last published artifact, or nil before the first
// successful Fetch.
func (l *Local) Current() *Artifact { return l.current.Load() }

// roots returns the folder and the work root with symlinks resolved: the
// walk does not follow symlinks, so it must start in the real folder (a
// Path that is a symlink would otherwise look empty), and it recognizes
// the work root by its real path.
func (l *Local) roots() (src, skip string, err error) {
	if src, err = filepath.EvalSymlinks(l.path); err != nil {
		return "", "", err
	}
	if skip, err = filepath.EvalSymlinks(l.pub.root); err != nil {
		return "", "", err
	}
	return src, skip, nil
}

// Fetch hashes the folder; if the content changed since the last Fetch it
// copies it into a fresh directory, hashing the copy, and publishes it
// only if both reads agree, so that a folder caught in the middle of an
// edit is not published: it is read again, up to three times, a Debounce
// apart. On error nothing is published and Current is unchanged.
func (l *Local) Fetch(ctx context.Context) (*Artifact, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := limits{maxSize: l.opts.MaxSize, maxFiles: l.opts.MaxFiles}
	for read := 1; ; read++ {
		src, skip, err := l.roots()
		if err != nil {
			return nil, fmt.Errorf("reading local folder %s: %w", l.path, err)
		}
		rev, _, err := l.snapshot(ctx, src, skip, "", lim)
		if err != nil {
			return nil, fmt.Errorf("reading local folder %s: %w", l.path, err)
		}
		cur := l.current.Load()
		if cur != nil && !dirExists(cur.Dir) {
			l.log.Warn("published checkout disappeared; copying again", "dir", cur.Dir)
			l.current.Store(nil)
			cur = nil
		}
		if cur != nil && cur.Revision == rev {
			return cur, nil
		}
		if l.betweenReads != nil {
			l.betweenReads()
		}
		staged, err := l.pub.stage()
		if err != nil {
			return nil, err
		}
		copied, entries, err := l.snapshot(ctx, src, skip, staged, lim)
		if err != nil {
			_ = os.RemoveAll(staged)
			return nil, fmt.Errorf("copying local folder %s: %w", l.path, err)
		}
		if copied == rev {
			dir, err := l.pub.publish(ctx, staged, strings.TrimPrefix(rev, "sha256:")[:12], localMeta{Path: l.path, Revision: rev})
			if err != nil {
				_ = os.RemoveAll(staged)
				return nil, err
			}
			art := &Artifact{Revision: rev, Dir: dir}
			l.current.Store(art)
			l.log.Info("published", "revision", rev, "dir", dir, "entries", entries)
			return art, nil
		}
		_ = os.RemoveAll(staged)
		if read == localReads {
			return nil, fmt.Errorf("reading local folder %s: it changed while it was being copied, %d times in a row; nothing was published (the next change or poll tries again)", l.path, localReads)
		}
		l.log.Debug("folder changed while it was being copied; reading it again", "read", read)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading local folder %s: %w", l.path, ctx.Err())
		case <-time.After(l.opts.Debounce):
		}
	}
}

// snapshot walks the folder src (lexical order, symlinks not followed,
// skipping .git folders and skip), hashes it and, when dst is set, copies
// it there. Every entry, directories included, counts against
// lim.maxFiles. It returns the revision and the number of entries.
func (l *Local) snapshot(ctx context.Context, src, skip, dst string, lim limits) (string, int, error) {
	var root *os.Root
	if dst != "" {
		r, err := os.OpenRoot(dst)
		if err != nil {
			return "", 0, err
		}
		defer r.Close()
		root = r
	}
	c := newContentHash()
	entries := 0
	var size int64
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == src {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || p == skip) {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		entries++
		if err := checkLimits(entries, size, lim); err != nil {
			return err
		}
		switch mode := d.Type(); {
		case mode.IsDir():
			c.add("d ", rel, nil)
			if root != nil {
				return root.Mkdir(rel, 0o755)
			}
			return nil
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			size += int64(len(target))
			if err := checkLimits(entries, size, lim); err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(target))
			c.add("l ", rel, sum[:])
			if root != nil {
				return root.Symlink(target, rel)
			}
			return nil
		case mode.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
			if err := checkLimits(entries, size, lim); err != nil {
				return err
			}
			kind, perm := fileKind(fi.Mode()), os.FileMode(0o644)
			if kind == "x " {
				perm = 0o755
			}
			sum, err := hashFile(p, root, rel, perm, lim.maxSize-(size-fi.Size()))
			if err != nil {
				return err
			}
			c.add(kind, rel, sum)
			return nil
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, mode)
		}
	})
	if err != nil {
		return "", 0, err
	}
	return c.sum(), entries, nil
}

func checkLimits(entries int, size int64, lim limits) error {
	if entries > lim.maxFiles {
		return fmt.Errorf("%w: more than %d files and directories (MaxFiles)", ErrTooLarge, lim.maxFiles)
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
	src, skip, err := l.roots()
	if err != nil {
		return fmt.Errorf("watching %s: %w", l.path, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", l.path, err)
	}
	defer w.Close()
	if err := watchTree(w, src, src, skip); err != nil {
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
			if ignored(ev.Name, src, skip) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					if err := watchTree(w, ev.Name, src, skip); err != nil {
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

// watchTree adds dir and its sub-folders to the watcher, skipping .git
// folders and skip; src is the (resolved) folder followed.
func watchTree(w *fsnotify.Watcher, dir, src, skip string) error {
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
		if p != src && (d.Name() == ".git" || p == skip) {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}

// ignored reports events under skip (the work root) or a .git folder of
// src.
func ignored(name, src, skip string) bool {
	if name == skip || strings.HasPrefix(name, skip+string(filepath.Separator)) {
		return true
	}
	rel, err := filepath.Rel(src, name)
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
