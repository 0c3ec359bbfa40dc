package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// publisher owns a work root and makes checkouts visible atomically:
//
//	root/current               symlink to checkouts/<name> (relative)
//	root/checkouts/<name>/     one checkout per published revision
//	root/checkouts/<name>.json what was published there (for a restart)
//	root/tmp/                  scratch: object stores, checkouts being written
//
// A checkout is written under tmp, renamed into checkouts (a complete tree
// appears at once), then a new symlink is renamed over current (rename(2)
// is atomic, so a reader of current sees the old tree or the new one, never
// neither). The current and the previous checkout are kept (more when
// several readers share the source: keep); older ones are
// removed. Callers serialize calls.
//
// Before the rename every file and directory of the checkout is synced to
// disk, and so are the record and the renames, so that after a power loss
// current never points at a checkout whose files did not reach the disk.
// The record (checkouts/<name>.json) holds a digest of the checkout's
// content; a restarted source checks it (verify) before it serves the
// checkout again.
type publisher struct {
	root, checkouts, tmp, link string
	// current is the name under checkouts of the current checkout ("" if
	// none); older are the names of earlier ones still kept, newest
	// first, at most keep-1 of them.
	current string
	older   []string
	// keep is how many checkouts stay on disk (2: the current and the
	// previous one): a reader that got an older path keeps reading it
	// while up to keep-1 newer ones are published.
	keep int
	// digest is the recorded content digest of current.
	digest string
	// lastStamp keeps checkout names increasing even if the clock steps
	// back.
	lastStamp int64
	// fsync makes a file or directory durable: (*os.File).Sync, which
	// tests replace to see what was synced.
	fsync func(*os.File) error
}

// record is what checkouts/<name>.json holds.
type record struct {
	// Digest is digestTree of the checkout when it was published.
	Digest string `json:"digest"`
	// Meta is the source's own description of the checkout.
	Meta json.RawMessage `json:"meta"`
}

// openPublisher prepares root, empties its scratch space and reads which
// checkout is current.
func openPublisher(root string) (*publisher, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("work directory %s: %w", root, err)
	}
	p := &publisher{
		root:      abs,
		checkouts: filepath.Join(abs, "checkouts"),
		tmp:       filepath.Join(abs, "tmp"),
		link:      filepath.Join(abs, "current"),
		fsync:     (*os.File).Sync,
	}
	if err := os.MkdirAll(p.checkouts, 0o755); err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	// Anything in tmp is left over from a crash.
	if err := os.RemoveAll(p.tmp); err != nil {
		return nil, fmt.Errorf("cleaning scratch directory: %w", err)
	}
	if err := os.Mkdir(p.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("creating scratch directory: %w", err)
	}
	if target, err := os.Readlink(p.link); err == nil {
		name := filepath.Base(target)
		if filepath.Join(abs, target) == filepath.Join(p.checkouts, name) {
			if fi, err := os.Stat(filepath.Join(p.checkouts, name)); err == nil && fi.IsDir() {
				p.current = name
			}
		}
	}
	return p, nil
}

// stage returns a new empty directory to write a checkout into.
func (p *publisher) stage() (string, error) {
	dir, err := os.MkdirTemp(p.tmp, "checkout-")
	if err != nil {
		return "", fmt.Errorf("creating checkout directory: %w", err)
	}
	// MkdirTemp makes it 0700; a published checkout is readable like the
	// files in it (a sidecar may run as another user).
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating checkout directory: %w", err)
	}
	return dir, nil
}

// scratch returns a new empty directory for temporary data.
func (p *publisher) scratch(prefix string) (string, error) {
	dir, err := os.MkdirTemp(p.tmp, prefix)
	if err != nil {
		return "", fmt.Errorf("creating scratch directory: %w", err)
	}
	return dir, nil
}

// dir is the absolute path of a checkout.
func (p *publisher) dir(name string) string { return filepath.Join(p.checkouts, name) }

// publish makes the staged checkout durable (every file and directory
// synced) while computing its digest, moves it into place under a new name
// starting with prefix, records meta and the digest next to it, makes it
// current and removes checkouts older than the previous one. It returns
// the checkout's path. When it fails, the current checkout is still
// current.
func (p *publisher) publish(ctx context.Context, staged, prefix string, meta any) (string, error) {
	digest, err := digestTree(ctx, staged, p.fsync)
	if err != nil {
		return "", fmt.Errorf("syncing the checkout to disk: %w", err)
	}
	// Names are never reused (a reader may still hold an old path), so
	// they carry the publish time, not just the content's id.
	stamp := max(time.Now().UnixNano(), p.lastStamp+1)
	name := ""
	for {
		name = prefix + "-" + strconv.FormatInt(stamp, 36)
		_, err := os.Lstat(p.dir(name))
		_, merr := os.Lstat(p.dir(name) + ".json")
		if errors.Is(err, fs.ErrNotExist) && errors.Is(merr, fs.ErrNotExist) {
			break
		}
		stamp++
	}
	p.lastStamp = stamp
	final := p.dir(name)
	if err := os.Rename(staged, final); err != nil {
		return "", fmt.Errorf("publishing checkout: %w", err)
	}
	if err := p.syncDir(p.checkouts); err != nil {
		_ = os.RemoveAll(final)
		return "", fmt.Errorf("publishing checkout: %w", err)
	}
	if err := p.writeRecord(name, digest, meta); err != nil {
		_ = os.RemoveAll(final)
		return "", err
	}
	if err := p.swap(name); err != nil {
		_ = os.RemoveAll(final)
		_ = os.Remove(final + ".json")
		return "", err
	}
	if p.current != name {
		if p.current != "" {
			p.older = append([]string{p.current}, p.older...)
		}
		if n := max(p.keep, 2) - 1; len(p.older) > n {
			p.older = p.older[:n]
		}
		p.current = name
	}
	p.digest = digest
	p.prune()
	return final, nil
}

// syncDir makes the entries of a directory durable.
func (p *publisher) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return p.fsync(d)
}

// swap points root/current at checkouts/name with one rename(2).
func (p *publisher) swap(name string) error {
	tmpLink := filepath.Join(p.tmp, "current.link")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Join("checkouts", name), tmpLink); err != nil {
		return fmt.Errorf("publishing checkout: %w", err)
	}
	if err := os.Rename(tmpLink, p.link); err != nil {
		_ = os.Remove(tmpLink)
		return fmt.Errorf("publishing checkout: %w", err)
	}
	// Make the rename durable; a failure here does not undo it.
	_ = p.syncDir(p.root)
	return nil
}

// writeRecord records meta and the checkout's digest as
// checkouts/<name>.json, atomically and durably.
func (p *publisher) writeRecord(name, digest string, meta any) error {
	m, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("recording checkout metadata: %w", err)
	}
	b, err := json.MarshalIndent(record{Digest: digest, Meta: m}, "", "  ")
	if err != nil {
		return fmt.Errorf("recording checkout metadata: %w", err)
	}
	f, err := os.CreateTemp(p.tmp, "meta-")
	if err != nil {
		return fmt.Errorf("recording checkout metadata: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	serr := p.fsync(f)
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("recording checkout metadata: %w", err)
	}
	if err := os.Rename(f.Name(), p.dir(name)+".json"); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("recording checkout metadata: %w", err)
	}
	if err := p.syncDir(p.checkouts); err != nil {
		return fmt.Errorf("recording checkout metadata: %w", err)
	}
	return nil
}

// rewriteMeta replaces the recorded meta of the current checkout, keeping
// its digest.
func (p *publisher) rewriteMeta(meta any) error {
	if p.current == "" {
		return errors.New("recording checkout metadata: no current checkout")
	}
	return p.writeRecord(p.current, p.digest, meta)
}

// readMeta loads the recorded meta of the current checkout into meta;
// false if there is none or it does not parse (a record written before
// checkouts had digests does not). It does not look at the checkout: call
// verify before serving it.
func (p *publisher) readMeta(meta any) bool {
	if p.current == "" {
		return false
	}
	b, err := os.ReadFile(p.dir(p.current) + ".json")
	if err != nil {
		return false
	}
	var rec record
	if json.Unmarshal(b, &rec) != nil || rec.Digest == "" || len(rec.Meta) == 0 {
		return false
	}
	if json.Unmarshal(rec.Meta, meta) != nil {
		return false
	}
	p.digest = rec.Digest
	return true
}

// verify checks that the current checkout still holds what was published:
// its content digest must be the recorded one. A checkout that fails (a
// file emptied by a power loss, or edited) is no longer current; the next
// publish replaces it.
func (p *publisher) verify(ctx context.Context) error {
	if p.current == "" || p.digest == "" {
		return errors.New("no recorded checkout")
	}
	got, err := digestTree(ctx, p.dir(p.current), nil)
	if err == nil && got != p.digest {
		err = fmt.Errorf("its content digest is %s, %s was recorded when it was published", got, p.digest)
	}
	if err != nil {
		name := p.current
		p.current, p.digest = "", "" // so the next publish prunes it
		return fmt.Errorf("checkout %s does not hold what was published: %w", p.dir(name), err)
	}
	return nil
}

// prune removes every checkout but the current one and the older ones
// kept. Failures are left for the next publish.
func (p *publisher) prune() {
	entries, err := os.ReadDir(p.checkouts)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".json")
		if name == p.current || slices.Contains(p.older, name) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(p.checkouts, e.Name()))
	}
}
