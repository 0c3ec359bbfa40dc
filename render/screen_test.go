package render

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

func TestCountNodes(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		limit    int64
		expanded int64
		literal  int64
		alias    bool
		cycle    bool
	}{
		// document, mapping, key, value
		{name: "plain", doc: "a: 1", limit: 100, expanded: 4, literal: 4},
		// document, mapping, a, seq(1, 2), b, alias -> seq(1, 2)
		{name: "one alias", doc: "a: &x [1, 2]\nb: *x", limit: 100, expanded: 10, literal: 8, alias: true},
		// the alias of an alias is counted as what it expands to
		{name: "alias of alias", doc: "a: &x [1]\nb: &y [*x, *x]\nc: *y", limit: 100, expanded: 1 + 1 + 1 + 2 + 1 + 5 + 1 + 5, literal: 11, alias: true},
		{name: "bomb saturates", doc: aliasBomb(9, 10), limit: 1000, expanded: 1001, alias: true},
		{name: "huge bomb does not overflow", doc: aliasBomb(30, 10), limit: 1 << 40, expanded: 1<<40 + 1, alias: true},
		{name: "literal document over the limit", doc: "[" + strings.Repeat("1, ", 50) + "1]", limit: 10, expanded: 11},
		{name: "alias inside its own anchor", doc: "a: &x {b: *x}", limit: 100, cycle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.doc), &doc); err != nil {
				t.Fatal(err)
			}
			got, err := countNodes(&doc, tt.limit)
			if tt.cycle {
				if !errors.Is(err, errCycle) {
					t.Fatalf("countNodes: %v, want errCycle", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.expanded != tt.expanded || got.hasAlias != tt.alias {
				t.Errorf("countNodes = %+v, want expanded %d, alias %v", got, tt.expanded, tt.alias)
			}
			if tt.literal != 0 && got.literal != tt.literal {
				t.Errorf("literal = %d, want %d", got.literal, tt.literal)
			}
		})
	}
}

func TestScreenYAML(t *testing.T) {
	bomb := aliasBomb(9, 10)
	tests := []struct {
		name    string
		data    string
		limit   int64
		extra   int64
		errDoc  int // document named in the error, 0 for no error
		isCycle bool
	}{
		{name: "no aliases", data: configMap, limit: 10},
		{name: "star in a string only", data: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {host: \"*.example.com\"}\n", limit: 1000},
		{name: "small alias", data: "a: &x [1, 2]\nb: *x\n", limit: 100, extra: 2},
		{name: "bomb", data: bomb, limit: 1_000_000, errDoc: 1},
		{name: "bomb in the third document", data: configMap + "---\n" + configMap + "---\n" + bomb, limit: 1_000_000, errDoc: 3},
		{name: "bomb after a document that does not parse", data: "a: [\n---\n" + bomb, limit: 1_000_000, errDoc: 2},
		{name: "bomb after CRLF separators", data: strings.ReplaceAll(configMap+"---\n"+bomb, "\n", "\r\n"), limit: 1_000_000, errDoc: 2},
		{name: "big literal document with an alias elsewhere", data: "[" + strings.Repeat("1, ", 50) + "1]\n---\na: &x 1\nb: *x\n", limit: 10, extra: 0},
		{name: "cycle", data: "a: &x [*x]\n", limit: 100, errDoc: 1, isCycle: true},
		{name: "not YAML", data: "key=value\nother=*thing\n", limit: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra, _, err := screenYAML([]byte(tt.data), tt.limit)
			if tt.errDoc == 0 {
				if err != nil {
					t.Fatalf("screenYAML: %v", err)
				}
				if extra != tt.extra {
					t.Errorf("extra = %d, want %d", extra, tt.extra)
				}
				return
			}
			var ne *nodesError
			if !errors.As(err, &ne) || !errors.Is(err, ErrYAMLNodes) {
				t.Fatalf("screenYAML: %v, want a nodesError", err)
			}
			if ne.doc != tt.errDoc || ne.cycle != tt.isCycle {
				t.Errorf("error %+v, want document %d, cycle %v", ne, tt.errDoc, tt.isCycle)
			}
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{in: "", want: nil},
		{in: "a: 1\n", want: []string{"a: 1\n"}},
		{in: "a: 1\n---\nb: 2\n", want: []string{"a: 1", "b: 2\n"}},
		{in: "a: 1\r\n--- # comment\r\nb: 2", want: []string{"a: 1", "b: 2"}},
		{in: "---\na: 1\n", want: []string{"---\na: 1\n"}},
	}
	for _, tt := range tests {
		got := splitDocuments([]byte(tt.in))
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("splitDocuments(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestAliasBombRefusedQuickly checks that a few hundred bytes of nested
// aliases (10^9 nodes once expanded) are refused in under a second with
// bounded memory, in a kustomization and in a plain folder. The time is
// the best of three runs, so a loaded machine does not make it flaky; the
// memory is what the builds allocated in total.
func TestAliasBombRefusedQuickly(t *testing.T) {
	bomb := aliasBomb(9, 10)
	if len(bomb) > 1024 {
		t.Fatalf("the bomb is %d bytes; it should be a few hundred", len(bomb))
	}
	for _, tr := range []tree{
		{files: map[string]string{"kustomization.yaml": "resources: [bomb.yaml]\n", "bomb.yaml": bomb}},
		{files: map[string]string{"a.yaml": configMap, "bomb.yaml": bomb}},
	} {
		root := tr.checkout(t)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		best := time.Hour
		for range 3 {
			start := time.Now()
			_, err := Build(context.Background(), Options{Root: root})
			best = min(best, time.Since(start))
			if !errors.Is(err, ErrYAMLNodes) || !strings.Contains(err.Error(), "bomb.yaml") {
				t.Fatalf("Build: %v, want ErrYAMLNodes naming bomb.yaml", err)
			}
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*32<<20 {
			t.Errorf("three refused builds allocated %d MiB", alloc>>20)
		}
		if best > time.Second {
			t.Errorf("refusing the bomb took %v at best", best)
		}
	}
}
