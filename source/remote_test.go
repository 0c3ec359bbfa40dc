package source

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// This file holds what the unit tests need to play a git server that
// sends whatever pack a test builds, including ones no git would write.

// testPack builds a pack file object by object.
type testPack struct {
	body  bytes.Buffer
	count uint32
}

// offset is where the next object starts (the 12-byte header included).
func (p *testPack) offset() int64 { return 12 + int64(p.body.Len()) }

func (p *testPack) header(typ plumbing.ObjectType, size int64) {
	b := byte(typ)<<4 | byte(size&0x0f)
	size >>= 4
	for size > 0 {
		p.body.WriteByte(b | 0x80)
		b = byte(size & 0x7f)
		size >>= 7
	}
	p.body.WriteByte(b)
}

// add appends a whole object and returns its offset and hash.
func (p *testPack) add(typ plumbing.ObjectType, content []byte) (int64, plumbing.Hash) {
	off := p.addRaw(typ, int64(len(content)), zlibBytes(content))
	return off, plumbing.ComputeHash(typ, content)
}

// addRaw appends an object with a declared size and already compressed
// data, which need not agree.
func (p *testPack) addRaw(typ plumbing.ObjectType, size int64, zdata []byte) int64 {
	off := p.offset()
	p.header(typ, size)
	p.body.Write(zdata)
	p.count++
	return off
}

// addOfsDelta appends a delta against the object at base.
func (p *testPack) addOfsDelta(base int64, delta []byte) int64 {
	off := p.offset()
	p.header(plumbing.OFSDeltaObject, int64(len(delta)))
	n := off - base
	enc := []byte{byte(n & 0x7f)}
	for n >>= 7; n != 0; n >>= 7 {
		n--
		enc = append([]byte{byte(0x80 | n&0x7f)}, enc...)
	}
	p.body.Write(enc)
	p.body.Write(zlibBytes(delta))
	p.count++
	return off
}

// bytes is the finished pack, header and checksum included.
func (p *testPack) bytes() []byte {
	var out bytes.Buffer
	out.WriteString("PACK")
	_ = binary.Write(&out, binary.BigEndian, uint32(2))
	_ = binary.Write(&out, binary.BigEndian, p.count)
	out.Write(p.body.Bytes())
	sum := sha1.Sum(out.Bytes())
	out.Write(sum[:])
	return out.Bytes()
}

func zlibBytes(b []byte) []byte {
	var out bytes.Buffer
	w := zlib.NewWriter(&out)
	_, _ = w.Write(b)
	_ = w.Close()
	return out.Bytes()
}

// zlibZeros is a zlib stream of n zero bytes (n a multiple of 1 MiB) made
// by repeating one compressed MiB, so that a 1 GiB blob costs about 1 MiB
// and no time to build.
func zlibZeros(n int64) []byte {
	const chunk = 1 << 20
	zeros := make([]byte, chunk)
	var out bytes.Buffer
	fw, _ := flate.NewWriter(&out, flate.BestCompression)
	_, _ = fw.Write(zeros)
	_ = fw.Flush()
	first := append([]byte(nil), out.Bytes()...)
	_, _ = fw.Write(zeros)
	_ = fw.Flush()
	// A block that follows a MiB of zeros refers only to zeros, so it
	// decodes the same wherever it is repeated.
	rep := append([]byte(nil), out.Bytes()[len(first):]...)
	mark := out.Len()
	_ = fw.Close()
	tail := append([]byte(nil), out.Bytes()[mark:]...)

	var z bytes.Buffer
	z.Write([]byte{0x78, 0xda})
	z.Write(first)
	for i := int64(1); i < n/chunk; i++ {
		z.Write(rep)
	}
	z.Write(tail)
	// Adler-32 of n zeros: a stays 1, b adds 1 per byte.
	_ = binary.Write(&z, binary.BigEndian, uint32(n%65521)<<16|1)
	return z.Bytes()
}

// zeroBlobHash is the git hash of a blob of n zeros.
func zeroBlobHash(n int64) plumbing.Hash {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", n)
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zeros)) {
		h.Write(zeros[:min(left, int64(len(zeros)))])
	}
	var out plumbing.Hash
	copy(out[:], h.Sum(nil))
	return out
}

func treeBytes(t testing.TB, entries ...object.TreeEntry) []byte {
	t.Helper()
	sort.Sort(object.TreeEntrySorter(entries))
	o := &plumbing.MemoryObject{}
	if err := (&object.Tree{Entries: entries}).Encode(o); err != nil {
		t.Fatal(err)
	}
	r, _ := o.Reader()
	b, _ := io.ReadAll(r)
	return b
}

func commitBytes(tree plumbing.Hash, msg string) []byte {
	return []byte(fmt.Sprintf("tree %s\nauthor T <t@example.com> 1700000000 +0000\ncommitter T <t@example.com> 1700000000 +0000\n\n%s\n", tree, msg))
}

// repoPack is a pack holding one commit of files (name → content) at the
// root, and the commit's hash.
func repoPack(t testing.TB, msg string, files map[string]string) ([]byte, plumbing.Hash) {
	t.Helper()
	var p testPack
	var entries []object.TreeEntry
	for name, content := range files {
		_, h := p.add(plumbing.BlobObject, []byte(content))
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
	}
	_, tree := p.add(plumbing.TreeObject, treeBytes(t, entries...))
	_, commit := p.add(plumbing.CommitObject, commitBytes(tree, msg))
	return p.bytes(), commit
}

// fakeRemote is a smart HTTP git server (protocol v0, no side-band) that
// advertises one branch, main, and answers every fetch with the pack it
// was given. Hooks replace either answer for hostile-server tests.
type fakeRemote struct {
	srv     *httptest.Server
	mu      sync.Mutex
	head    plumbing.Hash
	pack    []byte
	refs    http.HandlerFunc // answers /info/refs instead, when set
	upload  http.HandlerFunc // answers /git-upload-pack instead, when set
	uploads atomic.Int64
	auth    atomic.Value // string: the last Authorization header seen
}

func newFakeRemote(t testing.TB) *fakeRemote {
	f := &fakeRemote{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the repository's URL.
func (f *fakeRemote) URL() string { return f.srv.URL + "/repo.git" }

// set makes main point at head and fetches answer with pack.
func (f *fakeRemote) set(head plumbing.Hash, pack []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.head, f.pack = head, pack
}

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func (f *fakeRemote) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.auth.Store(r.Header.Get("Authorization"))
	f.mu.Lock()
	head, pack, refs, upload := f.head, f.pack, f.refs, f.upload
	f.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/info/refs"):
		if refs != nil {
			refs(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
		fmt.Fprint(w, pkt("# service=git-upload-pack\n")+"0000"+
			pkt(head.String()+" refs/heads/main\x00no-progress\n")+"0000")
	case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
		f.uploads.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if upload != nil {
			upload(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
		fmt.Fprint(w, pkt("NAK\n"))
		_, _ = w.Write(pack)
	default:
		http.NotFound(w, r)
	}
}

// allocated returns how many bytes of heap fn allocated in total: an upper
// bound of how much its peak heap grew, whatever the garbage collector did.
func allocated(fn func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// fetchWith builds a Git source for url in a new Dir and fetches once.
func fetchWith(t *testing.T, opts GitOptions) (*Git, *Artifact, error) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if (opts.Ref == Ref{}) {
		opts.Ref = Ref{Branch: "main"}
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	g, err := NewGit(opts)
	if err != nil {
		t.Fatalf("NewGit: %v", err)
	}
	art, err := g.Fetch(context.Background())
	return g, art, err
}

// copyDelta is delta data that builds target bytes by copying size bytes
// from offset 0 of a base of base bytes, again and again.
func copyDelta(base, size, target int64) []byte {
	var d bytes.Buffer
	leb := func(v int64) {
		for {
			b := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				d.WriteByte(b)
				return
			}
			d.WriteByte(b | 0x80)
		}
	}
	leb(base)
	leb(target)
	for left := target; left > 0; left -= size {
		n := min(left, size)
		// copy, offset 0 (no offset bytes), size in two bytes
		d.Write([]byte{0x80 | 0x10 | 0x20, byte(n), byte(n >> 8)})
	}
	return d.Bytes()
}
