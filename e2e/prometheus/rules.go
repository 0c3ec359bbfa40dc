package prometheus

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// RuleFile is a Prometheus rule file read for a test to adjust: shipped
// alerts wait minutes (`for: 10m`, an age over 900 s), a test waits
// seconds. Adjust a copy, never the shipped file.
type RuleFile struct {
	path   string
	groups []map[string]any
}

// ReadRules parses a rule file.
func ReadRules(path string) (*RuleFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Groups) == 0 {
		return nil, fmt.Errorf("%s: no rule groups", path)
	}
	return &RuleFile{path: path, groups: doc.Groups}, nil
}

// rules calls fn with each rule of each group.
func (f *RuleFile) rules(fn func(rule map[string]any) error) error {
	for _, g := range f.groups {
		rules, _ := g["rules"].([]any)
		for i, r := range rules {
			rule, ok := r.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: group %v: rule %d is not a mapping", f.path, g["name"], i)
			}
			if err := fn(rule); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetFor sets the `for:` of every rule that has one to d and returns how
// many it changed.
func (f *RuleFile) SetFor(d time.Duration) int {
	n := 0
	_ = f.rules(func(rule map[string]any) error {
		if _, ok := rule["for"]; ok {
			rule["for"] = model.Duration(d).String()
			n++
		}
		return nil
	})
	return n
}

// ReplaceInExpr replaces old with new in the expression of the alert
// named alert, e.g. a threshold. It fails when there is no such alert or
// its expression lacks old, so a test notices a changed rule.
func (f *RuleFile) ReplaceInExpr(alert, old, new string) error {
	found := false
	err := f.rules(func(rule map[string]any) error {
		if rule["alert"] != alert {
			return nil
		}
		found = true
		expr, _ := rule["expr"].(string)
		if !strings.Contains(expr, old) {
			return fmt.Errorf("%s: the expression of alert %s lacks %q: %s", f.path, alert, old, expr)
		}
		rule["expr"] = strings.ReplaceAll(expr, old, new)
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%s: no alert %s", f.path, alert)
	}
	return err
}

// Alerts are the names of the file's alerting rules.
func (f *RuleFile) Alerts() []string {
	var names []string
	_ = f.rules(func(rule map[string]any) error {
		if name, ok := rule["alert"].(string); ok {
			names = append(names, name)
		}
		return nil
	})
	return names
}

// Write writes the (adjusted) rules to path.
func (f *RuleFile) Write(path string) error {
	data, err := yaml.Marshal(map[string]any{"groups": f.groups})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
