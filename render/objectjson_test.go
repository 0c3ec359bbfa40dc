package render

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// objectJSON must return exactly what kyaml's RNode.MarshalJSON returns
// (or fail where it fails), on YAML chosen to trip a shortcut: every way
// YAML 1.1 and 1.2 read booleans, numbers, timestamps and nulls, explicit
// and unknown tags, anchors and merge keys, block scalars, non-string
// keys, values JSON cannot hold, and every manifest in examples/.
func TestObjectJSONMatchesKyaml(t *testing.T) {
	docs := []string{
		configMap,
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n  a: yes\n  b: no\n  c: on\n  d: Off\n  e: True\n  f: \"true\"\n  g: y\n  h: NO\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  a: 0x1F\n  b: 0o17\n  c: 017\n  d: 1e3\n  e: 1_000\n  f: +12\n  g: 3.0\n  h: -0\n  i: 12345678901234567890\n  j: 0b101\n  k: .5\n  l: 1.\n  m: -9223372036854775808\n  n: 18446744073709551615\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec: {a: .inf}\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec: {a: .NaN}\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  a: 2001-12-14t21:59:43.10-05:00\n  b: 2002-12-14\n  c: 2001-12-14 21:59:43.10 -5\n  d: !!timestamp 2001-12-14\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  a: ~\n  b: null\n  c:\n  d: Null\n  e: ''\n  f: \"\"\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nbase: &b {x: 1, y: [1, 2]}\nspec:\n  <<: *b\n  y: 3\n  z: *b\n  list: [*b, {<<: [*b], w: 4}]\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  a: !!binary aGVsbG8=\n  b: !!str 123\n  c: !!int \"42\"\n  d: !!float 1\n  e: !custom value\n  f: !!bool \"true\"\n  g: !!null ''\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  a: |\n    one\n    two\n\n  b: |-\n    keep\n  c: |+\n    all\n\n\n  d: >\n    folded\n    text\n\n    para\n  e: \"esc \\u00e9\\t\\\"q\\\" \\x41\"\n  f: 'it''s'\n  g: \"#not a comment\"\n  h: plain # a comment\n  i: \"\\U0001F600 ünïcödé\"\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  1: int key\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  nested: {2: a, true: b, null: c, 1.5: d}\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  ? [a, b]\n  : complex key\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  empty: {}\n  none: []\n  deep: [[[]], [{}], {a: [{b: [{c: d}]}]}]\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  \"quoted key\": 1\n  'single': 2\n  \"<script>\": \"&amp; <b>\"\n",
		"- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- 1\n- yes\n- ~\n",
		"apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec:\n  a: !!merge <<\n",
	}
	examples, err := filepath.Glob(filepath.Join("..", "examples", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join("..", "examples", "*", "*", "*.yaml"))
	for _, f := range append(examples, more...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, strings.Split(string(data), "\n---\n")...)
	}
	compared := 0
	for i, doc := range docs {
		rn, err := kyaml.Parse(doc)
		if err != nil || rn.IsNil() {
			continue // kustomize's parser refuses it before either runs
		}
		want, wantErr := rn.MarshalJSON()
		got, gotErr := objectJSON(rn)
		switch {
		case (wantErr == nil) != (gotErr == nil):
			t.Errorf("document %d: kyaml's error %v, objectJSON's %v\n%s", i, wantErr, gotErr, doc)
		case wantErr == nil && !bytes.Equal(got, want):
			t.Errorf("document %d:\n kyaml:      %s\n objectJSON: %s\n%s", i, want, got, doc)
		}
		compared++
	}
	if compared < len(docs)-2 {
		t.Fatalf("compared %d of %d documents: the corpus does not parse", compared, len(docs))
	}
}
