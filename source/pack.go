package source

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// A pack is checked before go-git parses it, because go-git's parser holds
// every object whole in memory while it indexes the pack (a delta with its
// base and its result): a 1 MiB pack can hold a blob that inflates to
// 1 GiB. checkPack walks the object headers of the spooled pack instead,
// inflating as a stream, and refuses a pack whose objects are too big, too
// big together or too many before anything is held in memory.

// packLimits bound what one pack may expand to.
type packLimits struct {
	// maxObject caps the inflated size of any one object, of a delta's
	// data and of the object a delta expands to. go-git holds each of
	// them whole in memory, so this bounds its memory use (about three
	// times maxObject plus its 96 MiB delta-base cache).
	maxObject int64
	// maxInflated caps the inflated bytes of all objects together (a
	// delta counts its data and its result): the CPU time a pack can cost.
	maxInflated int64
	// maxObjects caps the objects in the pack (go-git keeps a few hundred
	// bytes of index per object).
	maxObjects uint32
}

// packLimitsFor derives the pack limits from a checkout's limits: one
// object may be as large as the whole checkout, the pack may inflate to
// four times the checkout plus 64 MiB (trees, commits, and history when the
// full-history fallback runs) and hold two objects per entry plus 1024.
func packLimitsFor(lim limits) packLimits {
	objects := uint64(lim.maxFiles)*2 + 1024
	if objects > math.MaxUint32 {
		objects = math.MaxUint32
	}
	return packLimits{
		maxObject:   lim.maxSize,
		maxInflated: addSat(mulSat(lim.maxSize, 4), 64<<20),
		maxObjects:  uint32(objects),
	}
}

// spoolPack copies a pack stream into a new file in dir and returns it,
// positioned at its start. The caller closes and removes it.
func spoolPack(dir string, r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp(dir, "incoming-*.pack")
	if err != nil {
		return nil, fmt.Errorf("spooling the pack: %w", err)
	}
	fail := func(err error) (*os.File, error) {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, err
	}
	if _, err := io.Copy(f, r); err != nil {
		return fail(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(fmt.Errorf("spooling the pack: %w", err))
	}
	return f, nil
}

// checkPack reads a whole pack, object header by object header, and fails
// with ErrTooLarge as soon as an object or the running total passes lim.
// Objects are inflated as a stream into a small buffer, never held whole;
// of a delta only its first bytes are kept, which hold the size of the
// object it expands to. It also checks the pack's trailing checksum.
func checkPack(ctx context.Context, r io.ReadSeeker, lim packLimits) error {
	s := packfile.NewScanner(r)
	_, count, err := s.Header()
	if err != nil {
		return fmt.Errorf("reading the pack header: %w", err)
	}
	if count > lim.maxObjects {
		return fmt.Errorf("%w: the pack holds %d objects, more than the %d allowed (twice MaxFiles plus 1024)",
			ErrTooLarge, count, lim.maxObjects)
	}
	var total int64
	add := func(n int64) error {
		total = addSat(total, n)
		if total > lim.maxInflated {
			return fmt.Errorf("%w: the pack inflates to more than %s (4 × MaxSize + 64 MiB)",
				ErrTooLarge, formatBytes(lim.maxInflated))
		}
		return nil
	}
	var head deltaHead
	for i := uint32(0); i < count; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		oh, err := s.NextObjectHeader()
		if err != nil {
			return fmt.Errorf("reading object %d of the pack: %w", i+1, err)
		}
		if oh.Length > lim.maxObject {
			what := "a " + oh.Type.String()
			if oh.Type.IsDelta() {
				what = "a delta with data"
			}
			return fmt.Errorf("%w: the pack holds %s of %s, more than the %s one object may have (MaxSize)",
				ErrTooLarge, what, formatBytes(oh.Length), formatBytes(lim.maxObject))
		}
		if err := add(oh.Length); err != nil {
			return err
		}
		var w io.Writer = io.Discard
		if oh.Type.IsDelta() {
			head.reset()
			w = &head
		}
		n, _, err := s.NextObject(w)
		if err != nil {
			return fmt.Errorf("reading object %d of the pack: %w", i+1, err)
		}
		if n != oh.Length {
			return fmt.Errorf("%w: object %d inflates to %d bytes, its header says %d", packfile.ErrMalformedPackFile, i+1, n, oh.Length)
		}
		if !oh.Type.IsDelta() {
			continue
		}
		target, err := head.targetSize()
		if err != nil {
			return fmt.Errorf("object %d of the pack: %w", i+1, err)
		}
		if target > lim.maxObject {
			return fmt.Errorf("%w: the pack holds a delta that expands to %s, more than the %s one object may have (MaxSize)",
				ErrTooLarge, formatBytes(target), formatBytes(lim.maxObject))
		}
		if err := add(target); err != nil {
			return err
		}
	}
	if _, err := s.Checksum(); err != nil {
		return fmt.Errorf("reading the pack: %w", err)
	}
	return nil
}

// deltaHead keeps the first bytes of a delta's data, which start with the
// sizes of its base and of its result (two LEB128 numbers of at most 10
// bytes each), and discards the rest.
type deltaHead struct {
	buf [20]byte
	n   int
}

func (d *deltaHead) reset() { d.n = 0 }

func (d *deltaHead) Write(p []byte) (int, error) {
	d.n += copy(d.buf[d.n:], p)
	return len(p), nil
}

// targetSize decodes the size of the object the delta expands to.
func (d *deltaHead) targetSize() (int64, error) {
	b := d.buf[:d.n]
	var sizes [2]uint64
	for i := range sizes {
		var v uint64
		for shift := uint(0); ; shift += 7 {
			if len(b) == 0 || shift > 63 {
				return 0, fmt.Errorf("%w: bad delta header", packfile.ErrMalformedPackFile)
			}
			c := b[0]
			b = b[1:]
			v |= uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				break
			}
		}
		sizes[i] = v
	}
	if sizes[1] > math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return int64(sizes[1]), nil
}

// addSat is a+b for non-negative numbers, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// mulSat is a*k for non-negative numbers, saturating at math.MaxInt64.
func mulSat(a, k int64) int64 {
	if k != 0 && a > math.MaxInt64/k {
		return math.MaxInt64
	}
	return a * k
}
