package source

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// The test harness itself: a fetch from the fake remote publishes what the
// pack holds.
func TestFakeRemoteFetch(t *testing.T) {
	remote := newFakeRemote(t)
	pack, commit := repoPack(t, "one", map[string]string{"a.yaml": "a: 1\n", "b.yaml": "b: 2\n"})
	remote.set(commit, pack)
	g, art, err := fetchWith(t, GitOptions{URL: remote.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if art.Revision != "main@sha1:"+commit.String() {
		t.Errorf("revision %s", art.Revision)
	}
	for name, want := range map[string]string{"a.yaml": "a: 1\n", "b.yaml": "b: 2\n"} {
		if b, err := os.ReadFile(filepath.Join(art.Dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v", name, b, err)
		}
	}
	if st := g.Stats(); st.Fetches != 1 || st.FetchedObjects != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestZlibZeros(t *testing.T) {
	const n = 8 << 20
	r, err := zlib.NewReader(bytes.NewReader(zlibZeros(n)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || len(got) != n || bytes.Count(got, []byte{0}) != n {
		t.Fatalf("inflated %d bytes, %v", len(got), err)
	}
}

// checkPack refuses, from the headers alone and with a streaming inflate,
// every way a pack can expand beyond the limits.
func TestCheckPack(t *testing.T) {
	lim := packLimits{maxObject: 1 << 20, maxInflated: 3 << 20, maxObjects: 100}
	tests := []struct {
		name  string
		build func(p *testPack)
		want  string // "" for accepted
	}{
		{"small objects", func(p *testPack) {
			p.add(plumbing.BlobObject, []byte("hello"))
			p.add(plumbing.TreeObject, []byte{})
		}, ""},
		{"object of exactly the limit", func(p *testPack) {
			p.addRaw(plumbing.BlobObject, 1<<20, zlibZeros(1<<20))
		}, ""},
		{"a blob over the limit", func(p *testPack) {
			p.addRaw(plumbing.BlobObject, 1<<30, zlibZeros(1<<30))
		}, "the pack holds a blob of 1 GiB, more than the 1 MiB one object may have (MaxSize)"},
		{"a tree over the limit, declared", func(p *testPack) {
			p.addRaw(plumbing.TreeObject, 5<<40, zlibBytes(nil))
		}, "the pack holds a tree of 5120 GiB"},
		{"a delta that expands beyond the limit", func(p *testPack) {
			base, _ := p.add(plumbing.BlobObject, make([]byte, 4096))
			p.addOfsDelta(base, copyDelta(4096, 4096, 1<<30))
		}, "the pack holds a delta that expands to 1 GiB, more than the 1 MiB one object may have (MaxSize)"},
		{"a delta within the limit", func(p *testPack) {
			base, _ := p.add(plumbing.BlobObject, make([]byte, 4096))
			p.addOfsDelta(base, copyDelta(4096, 4096, 1<<20))
		}, ""},
		{"objects that together inflate too much", func(p *testPack) {
			for range 4 {
				p.addRaw(plumbing.BlobObject, 1<<20, zlibZeros(1<<20))
			}
		}, "the pack inflates to more than 3 MiB (4 × MaxSize + 64 MiB)"},
		{"deltas count what they expand to", func(p *testPack) {
			base, _ := p.add(plumbing.BlobObject, make([]byte, 4096))
			for range 4 {
				p.addOfsDelta(base, copyDelta(4096, 4096, 1<<20))
			}
		}, "the pack inflates to more than 3 MiB"},
		{"too many objects", func(p *testPack) {
			for i := range 101 {
				p.add(plumbing.BlobObject, []byte{byte(i)})
			}
		}, "the pack holds 101 objects, more than the 100 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p testPack
			tt.build(&p)
			err := checkPack(context.Background(), bytes.NewReader(p.bytes()), lim)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (!errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want ErrTooLarge saying %q", err, tt.want)
			}
		})
	}

	// Broken packs are errors, not refusals for size.
	var p testPack
	p.addRaw(plumbing.BlobObject, 10, zlibBytes([]byte("short")))
	if err := checkPack(context.Background(), bytes.NewReader(p.bytes()), lim); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("a blob shorter than its header: %v", err)
	}
	var q testPack
	q.add(plumbing.BlobObject, []byte("x"))
	b := q.bytes()
	b[len(b)-1] ^= 0xff
	if err := checkPack(context.Background(), bytes.NewReader(b), lim); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a bad checksum: %v", err)
	}
}
