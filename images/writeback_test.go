package images

import (
	"io"
	"strings"
	"testing"

	"github.com/tether-gitops/tether/contract"
)

// chunkReader hands out its content n bytes per Read.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.s))
	copy(p, c.s[:k])
	c.s = c.s[k:]
	return k, nil
}

func TestContainsMarker(t *testing.T) {
	filler := strings.Repeat("a: b\n", 30_000) // larger than one 64 KiB piece
	for _, tc := range []struct {
		name    string
		content string
		chunk   int
		want    bool
	}{
		{"no marker", filler, 1 << 20, false},
		{"marker at the end", filler + "image: x # " + contract.ImageMarker + " web\n", 1 << 20, true},
		{"marker split across reads", filler + "# " + contract.ImageMarker, 7, true},
		{"marker at the start", "# " + contract.ImageMarker + " web\n" + filler, 3, true},
		{"a prefix of the marker only", filler + "# " + contract.ImageMarker[:len(contract.ImageMarker)-1], 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containsMarker(&chunkReader{s: tc.content, n: tc.chunk})
			if err != nil || got != tc.want {
				t.Errorf("containsMarker = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
