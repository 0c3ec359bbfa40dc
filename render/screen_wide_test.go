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
