package prometheus

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const sampleRules = `# comment
groups:
  - name: one
    rules:
      - alert: Slow
        expr: up == 0
        for: 10m
        labels:
          severity: warning
      - alert: Aged
        expr: time() - last_seen_timestamp_seconds > 900
      - record: job:up:sum
        expr: sum by (job) (up)
  - name: two
    rules:
      - alert: Slower
        expr: absent(up)
        for: 1h
`

func writeRules(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A test's copy of shipped rules: every `for:` shortened, a threshold
// lowered, everything else kept; mistakes are errors.
func TestRuleFile(t *testing.T) {
	f, err := ReadRules(writeRules(t, sampleRules))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Alerts(); !slices.Equal(got, []string{"Slow", "Aged", "Slower"}) {
		t.Errorf("alerts %v", got)
	}
	if n := f.SetFor(2 * time.Second); n != 2 {
		t.Errorf("SetFor changed %d rules, want 2", n)
	}
	if err := f.ReplaceInExpr("Aged", "> 900", "> 5"); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct{ alert, old, want string }{
		{"Missing", "> 900", "no alert Missing"},
		{"Slow", "> 900", `the expression of alert Slow lacks "> 900"`},
	} {
		if err := f.ReplaceInExpr(tc.alert, tc.old, "x"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReplaceInExpr(%s, %q): %v, want an error with %q", tc.alert, tc.old, err, tc.want)
		}
	}
	out := filepath.Join(t.TempDir(), "out.yaml")
	if err := f.Write(out); err != nil {
		t.Fatal(err)
	}
	again, err := ReadRules(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = again.rules(func(rule map[string]any) error {
		got = append(got, strings.TrimSpace(strings.Join([]string{str(rule["alert"]) + str(rule["record"]), str(rule["expr"]), str(rule["for"])}, " | ")))
		return nil
	})
	want := []string{
		"Slow | up == 0 | 2s",
		"Aged | time() - last_seen_timestamp_seconds > 5 |",
		"job:up:sum | sum by (job) (up) |",
		"Slower | absent(up) | 2s",
	}
	if !slices.Equal(got, want) {
		t.Errorf("written rules:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func TestReadRulesRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"not rules", "scrape_configs: []\n", "unknown field"},
		{"no groups", "groups: []\n", "no rule groups"},
		{"not YAML", "groups: [\n", "rules.yaml"},
	} {
		if _, err := ReadRules(writeRules(t, tc.content)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
