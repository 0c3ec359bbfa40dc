package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func wideConfigMap(keys int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wide\ndata:\n")
	for i := 0; i < keys; i++ {
		fmt.Fprintf(&b, "  key%06d: v%d\n", i, i)
	}
	return b.String()
}

// denseFlowMapping is a flow mapping of n distinct keys without values,
// each key as short as it can be: {a,b,...,aa,ab,...}.
func denseFlowMapping(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	keys := make([]string, 0, n)
	for l := 1; len(keys) < n; l++ {
		var gen func(prefix string)
		gen = func(prefix string) {
			if len(keys) == n {
				return
			}
			if len(prefix) == l {
				keys = append(keys, prefix)
				return
			}
			for _, c := range letters {
				gen(prefix + string(c))
			}
		}
		gen("")
	}
	return "{" + strings.Join(keys, ",") + "}\n"
}

// A mapping wider than MaxMappingKeys is refused before kustomize spends
// minutes of CPU on it; one just under the cap renders.
func TestWideMappingRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keys   int
		refuse bool
	}{
		{"under the cap", MaxMappingKeys - 1, false},
		{"over the cap", MaxMappingKeys + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "wide.yaml"), []byte(wideConfigMap(tc.keys)), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, kustomized := range []bool{false, true} {
				if kustomized {
					os.WriteFile(filepath.Join(root, "kustomization.yaml"), []byte("resources:\n- wide.yaml\n"), 0o644)
				}
				res, err := Build(context.Background(), Options{Root: root})
				if !tc.refuse {
					if err != nil || len(res) != 1 {
						t.Fatalf("kustomization %v: %d objects, err %v", kustomized, len(res), err)
					}
					continue
				}
				if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "wide.yaml") || !strings.Contains(err.Error(), fmt.Sprintf("%d keys", tc.keys)) {
					t.Fatalf("kustomization %v: want a refusal naming wide.yaml and the key count, got %v", kustomized, err)
				}
			}
		})
	}
}

// The wide work of a file is the square of the keys of each mapping of at
// least wideWorkMin keys, nested ones included; narrower mappings count
// nothing.
func TestScreenCountsWideWork(t *testing.T) {
	nested := func(keys int) string {
		return "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(wideConfigMap(keys), "\n", "\n  ")
	}
	for _, tc := range []struct {
		name string
		data string
		want int64
	}{
		{"narrow", wideConfigMap(wideWorkMin - 1), 0},
		{"at the threshold", wideConfigMap(wideWorkMin), wideWorkMin * wideWorkMin},
		{"two documents", wideConfigMap(3000) + "---\n" + wideConfigMap(4000), 3000*3000 + 4000*4000},
		{"nested", nested(5000), 5000 * 5000},
		// Keys as short as they can be, in a flow mapping: 2,000 of them
		// fit in under 7,000 bytes.
		{"dense flow mapping", denseFlowMapping(wideWorkMin), wideWorkMin * wideWorkMin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, work, err := screenYAML([]byte(tc.data), DefaultMaxYAMLNodes)
			if err != nil {
				t.Fatal(err)
			}
			if work != tc.want {
				t.Errorf("work = %d, want %d", work, tc.want)
			}
		})
	}
	// Under 40,000 bytes, too small for the check before it counted two
	// bytes a key.
	dense := denseFlowMapping(MaxMappingKeys + 1)
	if _, _, err := screenYAML([]byte(dense), DefaultMaxYAMLNodes); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a dense flow mapping of %d keys in %d bytes: %v, want a refusal", MaxMappingKeys+1, len(dense), err)
	}
}

// Many mappings or generators each under MaxMappingKeys add up: past
// MaxWideWork the build is refused before kustomize runs (which would take
// a second of CPU for each), naming the file or entry that passed it.
func TestWideWorkAddsUpAcrossTheBuild(t *testing.T) {
	const n = 5 // four mappings of MaxMappingKeys-1 keys fit, the fifth does not
	keys := MaxMappingKeys - 1
	t.Run("files", func(t *testing.T) {
		root := t.TempDir()
		var res []string
		for i := range n {
			name := fmt.Sprintf("cm%d.yaml", i)
			data := strings.Replace(wideConfigMap(keys), "name: wide", fmt.Sprintf("name: wide%d", i), 1)
			if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			res = append(res, "- "+name)
		}
		if err := os.WriteFile(filepath.Join(root, "kustomization.yaml"), []byte("resources:\n"+strings.Join(res, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Build(context.Background(), Options{Root: root})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "cm4.yaml") || !strings.Contains(err.Error(), "MaxWideWork") {
			t.Fatalf("want a refusal naming cm4.yaml and MaxWideWork, got %v", err)
		}
	})
	t.Run("generators", func(t *testing.T) {
		root := t.TempDir()
		var k strings.Builder
		k.WriteString("configMapGenerator:\n")
		for i := range n {
			fmt.Fprintf(&k, "- name: gen%d\n  literals:\n", i)
			for j := range keys {
				fmt.Fprintf(&k, "  - k%05d=v\n", j)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "kustomization.yaml"), []byte(k.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Build(context.Background(), Options{Root: root})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "configMapGenerator[4]") || !strings.Contains(err.Error(), "MaxWideWork") {
			t.Fatalf("want a refusal naming configMapGenerator[4] and MaxWideWork, got %v", err)
		}
	})
}
