// Package alerts holds tether's Prometheus alert rules: a plain rules file
// (tether.rules.yaml) and the same groups as a PrometheusRule for the
// Prometheus Operator (tether.prometheusrule.yaml), generated from it by
// this package's test, which fails when the two differ.
package alerts

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	rulesFile          = "tether.rules.yaml"
	prometheusRuleFile = "tether.prometheusrule.yaml"
)

// prometheusRuleHeader is everything of the PrometheusRule before its
// spec, which is the rules file's groups.
const prometheusRuleHeader = `# tether's alert rules as a PrometheusRule, for the Prometheus Operator
# (its ruleSelector must match these labels):
#   kubectl apply --server-side -f manifests/alerts/tether.prometheusrule.yaml
# Generated from tether.rules.yaml (UPDATE_ALERTS=1 go test ./manifests/alerts):
# edit that file, not this one.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: tether
  namespace: tether-system
  labels:
    app.kubernetes.io/name: tether
    app.kubernetes.io/part-of: tether
spec:
`

// prometheusRule renders the PrometheusRule from the rules file: the
// header, then the rules file without its leading comment block, indented
// under spec (comments inside the groups are kept).
func prometheusRule(rules []byte) []byte {
	lines := strings.Split(string(rules), "\n")
	for len(lines) > 0 && (strings.HasPrefix(lines[0], "#") || strings.TrimSpace(lines[0]) == "") {
		lines = lines[1:]
	}
	var b bytes.Buffer
	b.WriteString(prometheusRuleHeader)
	for i, l := range lines {
		if i == len(lines)-1 && l == "" {
			break // the file's final newline
		}
		if l != "" {
			b.WriteString("  ")
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// The PrometheusRule is the rules file under spec, byte for byte as
// generated and equal once parsed; UPDATE_ALERTS=1 regenerates it.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := prometheusRule(rules)
	if os.Getenv("UPDATE_ALERTS") == "1" {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what %s generates; run UPDATE_ALERTS=1 go test ./manifests/alerts", prometheusRuleFile, rulesFile)
	}

	// Parsed, the groups are the same (this guards the generator).
	var plain struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(rules, &plain); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var pr struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(got, &pr); err != nil {
		t.Fatalf("%s: %v", prometheusRuleFile, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata["name"] != "tether" {
		t.Errorf("%s is %s %s %v, want monitoring.coreos.com/v1 PrometheusRule tether", prometheusRuleFile, pr.APIVersion, pr.Kind, pr.Metadata["name"])
	}
	if len(plain.Groups) == 0 || !reflect.DeepEqual(plain.Groups, pr.Spec.Groups) {
		t.Errorf("the groups of %s and %s differ once parsed", rulesFile, prometheusRuleFile)
	}
}

// The generator keeps comments and block structure: a rules file with a
// header comment, a comment inside the groups and a blank line comes out
// indented under spec, with no trailing spaces.
func TestPrometheusRuleGenerator(t *testing.T) {
	in := "# header\n#\n\ngroups:\n  - name: g\n    # inside\n    rules:\n\n      - alert: A\n        expr: up == 0\n"
	want := prometheusRuleHeader + "  groups:\n    - name: g\n      # inside\n      rules:\n\n        - alert: A\n          expr: up == 0\n"
	if got := string(prometheusRule([]byte(in))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
