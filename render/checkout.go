package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
)

// Annotations kustomize writes while it tracks origins (see kustomize.go).
// A file that mentions them might make a build depend on them.
const (
	originAnnotation          = "config.kubernetes.io/origin"
	transformationsAnnotation = "alpha.config.kubernetes.io/transformations"
)

// osPath turns a resolved slash path into the name os.Root expects.
func osPath(rel string) string {
	if rel == "" {
		return "."
	}
	return filepath.FromSlash(rel)
}

// pathError turns a failure to resolve rel into an *Error about file.
func pathError(file, entry, rel string, err error) error {
	var esc *escapeError
	if errors.As(err, &esc) {
		return refusal(file, entry, ErrEscape, esc.detail())
	}
	if errors.Is(err, fs.ErrNotExist) {
		return &Error{File: file, Entry: entry, Reason: fmt.Sprintf("%q: no such file or directory in the checkout", rel), Err: err}
	}
	return &Error{File: file, Entry: entry, Reason: fmt.Sprintf("%q: %v", rel, err), Err: err}
}

// stat resolves rel inside the checkout and describes what it leads to.
func (b *build) stat(rel string) (string, fs.FileInfo, error) {
	res, err := resolve(b.root, rel)
	if err != nil {
		return "", nil, err
	}
	fi, err := b.root.Stat(osPath(res))
	if err != nil {
		return "", nil, err
	}
	return res, fi, nil
}

// folder resolves Options.Path to a folder inside the checkout.
func (b *build) folder(p string) (string, error) {
	rel, err := cleanRel(filepath.ToSlash(p))
	if err != nil {
		return "", pathError(p, "", p, err)
	}
	res, fi, err := b.stat(rel)
	if err != nil {
		return "", pathError(p, "", p, err)
	}
	if !fi.IsDir() {
		return "", &Error{File: p, Reason: "not a folder"}
	}
	return res, nil
}

// kustomizationFile returns the name of dir's kustomization file, or "" if
// it has none. Like kustomize it refuses a folder with more than one; and
// since kustomize reads it only when it resolves to inside dir (its loader
// restricts reads to the kustomization's own folder), a symlink that leads
// elsewhere is an error rather than silently no kustomization.
func (b *build) kustomizationFile(dir string) (string, error) {
	var found []string
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		rel := path.Join(dir, name)
		res, fi, err := b.stat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", pathError(rel, "", rel, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if dir != "" && !strings.HasPrefix(res, dir+"/") {
			return "", &Error{File: rel, Reason: fmt.Sprintf("a symlink to %q, outside its folder; kustomize does not read it", res)}
		}
		found = append(found, name)
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	default:
		return "", &Error{File: displayDir(dir), Reason: fmt.Sprintf("more than one kustomization file (%s); kustomize refuses to choose", strings.Join(found, ", "))}
	}
}

// readFile returns the content of the file at rel (slash path relative to
// the checkout root) and its resolved path. Each file is read once: later
// reads get the same bytes, so what was vetted is what kustomize parses.
// Reads are refused when the build was cancelled, when the path leads
// outside the checkout, when the file is over MaxFileSize, when the YAML
// read so far would pass MaxTotalSize, and when a YAML document in the file
// expands past MaxYAMLNodes (or the build's aliases together would). The
// errors are *Error values naming the file.
func (b *build) readFile(rel string) (string, []byte, error) {
	if err := b.ctx.Err(); err != nil {
		return "", nil, &Error{File: rel, Reason: "build cancelled: " + err.Error(), Err: err}
	}
	res, fi, err := b.stat(rel)
	if err != nil {
		return "", nil, pathError(rel, "", rel, err)
	}
	if data, ok := b.files[res]; ok {
		return res, data, nil
	}
	if fi.IsDir() {
		return "", nil, &Error{File: res, Reason: "is a folder, not a file", Err: fs.ErrInvalid}
	}
	if !fi.Mode().IsRegular() {
		// Opening a FIFO or device would block or read forever.
		return "", nil, &Error{File: res, Reason: "not a regular file", Err: fs.ErrInvalid}
	}
	if b.onRead != nil {
		b.onRead(res)
	}
	max := b.opts.MaxFileSize
	if fi.Size() > max {
		return "", nil, refusal(res, "", ErrTooLarge, fmt.Sprintf("%d bytes, more than the %d allowed per file (MaxFileSize)", fi.Size(), max))
	}
	f, err := b.root.Open(osPath(res))
	if err != nil {
		return "", nil, pathError(res, "", res, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	_ = f.Close()
	if err != nil {
		return "", nil, &Error{File: res, Reason: "reading: " + err.Error(), Err: err}
	}
	if int64(len(data)) > max {
		return "", nil, refusal(res, "", ErrTooLarge, fmt.Sprintf("more than the %d bytes allowed per file (MaxFileSize)", max))
	}
	if b.read+int64(len(data)) > b.opts.MaxTotalSize {
		return "", nil, refusal(res, "", ErrTooLarge, fmt.Sprintf("reading it takes the YAML read from the checkout past %d bytes (MaxTotalSize)", b.opts.MaxTotalSize))
	}
	b.read += int64(len(data))
	if err := b.screen(res, "", data); err != nil {
		return "", nil, err
	}
	if bytes.Contains(data, []byte(originAnnotation)) || bytes.Contains(data, []byte(transformationsAnnotation)) {
		b.mentionsTracking = true
	}
	b.files[res] = data
	return res, data, nil
}

// screen checks the YAML in data (a file, or a string inside one that
// kustomize parses as YAML) against MaxYAMLNodes, per document and for the
// build as a whole.
func (b *build) screen(file, entry string, data []byte) error {
	limit := int64(b.opts.MaxYAMLNodes)
	extra, work, err := screenYAML(data, limit)
	if err != nil {
		var ne *nodesError
		if errors.As(err, &ne) {
			where := fmt.Sprintf("document %d", ne.doc)
			if entry != "" {
				where = entry + " " + where
			}
			detail := fmt.Sprintf("more than %d nodes once aliases are expanded (MaxYAMLNodes)", limit)
			if ne.cycle {
				detail = "an alias refers to a node that contains it, so expanding it never ends"
			}
			return refusal(file, where, ErrYAMLNodes, detail)
		}
		return &Error{File: file, Entry: entry, Reason: err.Error(), Err: err}
	}
	b.extra += extra
	if b.extra > limit {
		return refusal(file, entry, ErrYAMLNodes, fmt.Sprintf("aliases in the YAML read so far expand to more than %d extra nodes in total (MaxYAMLNodes)", limit))
	}
	return b.addWideWork(file, entry, work)
}

// addWideWork adds the wide work of a mapping or generator (its keys
// squared, see MaxWideWork) to the build's and refuses it past the bound.
func (b *build) addWideWork(file, entry string, work int64) error {
	b.wideWork += work
	if b.wideWork > MaxWideWork {
		return refusal(file, entry, ErrTooLarge, fmt.Sprintf("the wide mappings and generators read so far (those of %d keys or more) add up to more work than four of %d keys (kustomize's time grows with the square of each one's keys; MaxWideWork)", wideWorkMin, MaxMappingKeys))
	}
	return nil
}

// readDir lists a resolved folder, sorted by name.
func (b *build) readDir(dir string) ([]fs.DirEntry, error) {
	f, err := b.root.Open(osPath(dir))
	if err != nil {
		return nil, pathError(dir, "", dir, err)
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, &Error{File: dir, Reason: "listing the folder: " + err.Error(), Err: err}
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}
