package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/contract"
)

// pageNames are the pages; each is parsed with layout.html into a template
// set of its own, so each can define "main".
func pageNames() []string { return []string{"overview", "sync", "object", "login", "error"} }

// nodeArgs is what the recursive "node" template gets.
type nodeArgs struct {
	Node treeNode
	Page *page
}

// revisionArgs is what the "revision" template gets: a revision (nil
// for none yet) and the page's time, for the commit's age.
type revisionArgs struct {
	Rev *agent.RevisionStatus
	Now time.Time
}

// driftArgs is what the "drift-table" template gets.
type driftArgs struct {
	Drift      []Drift
	Page       *page
	WithObject bool
}

// funcs are the template functions. None returns template.HTML or another
// trusted type: every string reaches the page through html/template's
// escaping.
func funcs() template.FuncMap {
	return template.FuncMap{
		"stateClass": stateClass,
		"short":      shortRevision,
		"ago":        ago,
		"ref":        func(id object.ObjMetadata) string { return contract.ObjectRef(id) },
		"firstLine":  firstLine,
		"nodeArgs":   func(n treeNode, p *page) nodeArgs { return nodeArgs{Node: n, Page: p} },
		"phase":      phaseDuration,
		"counts":     sortedCounts,
		"add":        func(a, b int) int { return a + b },
		"diffClass":  diffClass,
		"plural":     plural,
		"imageClass": imageClass,
		"revArgs":    func(r *agent.RevisionStatus, now time.Time) revisionArgs { return revisionArgs{Rev: r, Now: now} },
		"driftArgs": func(d []Drift, p *page, withObject bool) driftArgs {
			return driftArgs{Drift: d, Page: p, WithObject: withObject}
		},
	}
}

func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs()).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parsing the layout: %w", err)
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames() {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFiles, "templates/"+name+".html")
		}
		if err != nil {
			return nil, fmt.Errorf("ui: parsing page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// firstLine is the first line of a text, with "…" when there is more.
func firstLine(s string) string {
	if line, _, more := strings.Cut(s, "\n"); more {
		return line + " …"
	}
	return s
}

// diffClass is the CSS class of a diff line kind.
func diffClass(kind string) string {
	switch kind {
	case "add":
		return "d-add"
	case "del":
		return "d-del"
	case "hunk":
		return "d-hunk"
	case "file":
		return "d-file"
	}
	return "d-ctx"
}

// plural is "1 object", "2 objects".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// imageClass is the CSS class of an image update's state: failed and held
// updates need someone, pending ones wait, done ones are fine. The result
// is always one of a fixed set.
func imageClass(s ImageState) string {
	switch {
	case s == ImageRolloutFailed || s == ImageHeld:
		return "st-bad"
	case s == ImageStuck || s.Pending():
		return "st-wait"
	case s.Done():
		return "st-ok"
	}
	return "st-none"
}
