package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/object"
	"sigs.k8s.io/yaml"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
	tsync "github.com/tether-gitops/tether/sync"
)

// overviewData is the overview page.
type overviewData struct {
	Query  listQuery
	States []string
	Sorts  []sortLink
	Rows   []overviewRow
	// Visible is the number of syncs the user may see (before filters).
	Visible int
	// DriftTracked and ImagesTracked show those columns.
	DriftTracked, ImagesTracked bool
}

// sortLink is a sortable column header.
type sortLink struct {
	Key, Label, Href string
	// Sorted is "ascending", "descending" or "none" (aria-sort).
	Sorted string
}

// overviewRow is one sync on the overview.
type overviewRow struct {
	agent.SyncStatus
	State  string
	Link   string
	Drift  driftSummary
	Images imageSummary
}

// driftSummary is a sync's open drift on the overview.
type driftSummary struct {
	// Known is false when the agent does not track the sync's drift (yet):
	// the page says so rather than show a zero.
	Known           bool
	Fields, Objects int
}

// summarizeDrift counts the fields and objects of drift; nil is unknown.
func summarizeDrift(drift []Drift) driftSummary {
	if drift == nil {
		return driftSummary{}
	}
	objects := map[object.ObjMetadata]bool{}
	n := 0
	for _, d := range drift {
		objects[d.Object] = true
		if !d.Deleted {
			n++
		}
	}
	return driftSummary{Known: true, Fields: n, Objects: len(objects)}
}

// imageSummary is a sync's image updates on the overview.
type imageSummary struct {
	// Known is false when no image policy concerns the sync.
	Known bool
	Total int
	// Counts are the updates per state that is not done, most urgent
	// first.
	Counts []stateCount
}

// stateCount is how many image updates are in one state.
type stateCount struct {
	State ImageState
	N     int
}

// summarizeImages counts updates by state, leaving out those that are
// done (up to date, rolled out); nil is unknown.
func summarizeImages(updates []ImageUpdate) imageSummary {
	if updates == nil {
		return imageSummary{}
	}
	out := imageSummary{Known: true, Total: len(updates)}
	for _, st := range imageStates() {
		if st.Done() {
			continue
		}
		n := 0
		for _, u := range updates {
			if u.State == st {
				n++
			}
		}
		if n > 0 {
			out.Counts = append(out.Counts, stateCount{State: st, N: n})
		}
	}
	return out
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := parseListQuery(r.URL.Query())
	d := overviewData{Query: q, States: states(), Visible: len(v.visible)}
	for _, key := range sortKeys() {
		l := sortLink{Key: key, Label: map[string]string{"name": "Sync", "state": "State", "applied": "Applied", "attempt": "Last attempt"}[key], Href: q.link(key), Sorted: "none"}
		if key == q.Sort {
			l.Sorted = map[bool]string{false: "ascending", true: "descending"}[q.Desc]
		}
		d.Sorts = append(d.Sorts, l)
	}
	for _, sync := range q.apply(v.visible) {
		ex := s.extras(r.Context(), &v.status, sync.Name)
		row := overviewRow{SyncStatus: sync, State: syncState(sync), Link: "syncs/" + url.PathEscape(sync.Name),
			Drift: summarizeDrift(ex.Drift), Images: summarizeImages(ex.Images)}
		d.DriftTracked = d.DriftTracked || row.Drift.Known
		d.ImagesTracked = d.ImagesTracked || row.Images.Known
		d.Rows = append(d.Rows, row)
	}
	p := s.newPage(r, v, "Syncs", d)
	p.Events = eventsURL(p.Root, "", fingerprint(v.status, v.visible))
	s.render(w, http.StatusOK, "overview", p)
}

// eventsURL is the event stream of a page: all visible syncs, or one.
func eventsURL(root, sync, fp string) string {
	v := url.Values{"since": {fp}}
	if sync != "" {
		v.Set("sync", sync)
	}
	return root + "events?" + v.Encode()
}

// syncData is the page of one sync.
type syncData struct {
	Sync  agent.SyncStatus
	State string
	// Tree is the sync's objects; nil with DetailError when they could not
	// be read.
	Tree        []treeNode
	Detail      *SyncDetail
	DetailError string
	Extras      Extras
	// Phases are the phase names that appear in the history, in order.
	Phases []string
}

// treeNode is a Node as the page shows it.
type treeNode struct {
	Node
	// Link is the object's page ("" for objects not in the inventory).
	Link     string
	Drift    []Drift
	Children []treeNode
}

func (s *Server) syncPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	name := r.PathValue("name")
	sync, ok := v.find(name)
	if !ok {
		// The same answer for a sync that does not exist and one the user
		// may not read: the page does not tell them apart.
		s.renderError(w, r, http.StatusNotFound, "There is no sync of that name you may read.")
		return
	}
	p := s.newPage(r, v, sync.Name, nil)
	d := syncData{Sync: sync, State: syncState(sync), Extras: s.extras(r.Context(), &v.status, name), Phases: historyPhases(sync.History)}
	detail, err := s.opts.Source.Sync(r.Context(), v.status.InventoryNamespace, name)
	if err != nil {
		s.opts.Log.Warn("reading a sync for the page", "sync", name, "error", err)
		d.DetailError = err.Error()
	} else {
		d.Detail = detail
		drift := map[object.ObjMetadata][]Drift{}
		for _, dr := range d.Extras.Drift {
			drift[dr.Object] = append(drift[dr.Object], dr)
		}
		d.Tree = treeView(detail.Roots, p.Root, drift)
	}
	p.Data = d
	p.Events = eventsURL(p.Root, name, fingerprint(v.status, []agent.SyncStatus{sync}))
	s.render(w, http.StatusOK, "sync", p)
}

// treeView turns nodes into what the page shows: links for the objects the
// inventory lists, drift by object.
func treeView(nodes []Node, root string, drift map[object.ObjMetadata][]Drift) []treeNode {
	out := make([]treeNode, 0, len(nodes))
	for _, n := range nodes {
		t := treeNode{Node: n, Drift: drift[n.ID], Children: treeView(n.Children, root, drift)}
		if n.Entry != nil {
			t.Link = root + "objects/" + objectPath(n.ID)
		}
		out = append(out, t)
	}
	return out
}

// historyPhases lists the phases the attempts timed, in the order they ran.
func historyPhases(history []agent.Attempt) []string {
	var out []string
	seen := map[string]bool{}
	for i := len(history) - 1; i >= 0; i-- {
		for _, p := range history[i].Phases {
			if !seen[p.Phase] {
				seen[p.Phase] = true
				out = append(out, p.Phase)
			}
		}
	}
	return out
}

// objectData is the page of one object.
type objectData struct {
	Ref    string
	Detail *ObjectDetail
	Owners []ownerView
	Secret bool
	// ChangedIn is the revision that last changed the object.
	ChangedIn string
	// AppliedAt is when tether last applied it.
	AppliedAt   time.Time
	AppliedYAML string
	LiveYAML    string
	Diff        []diffLine
	Managers    []metav1.ManagedFieldsEntry
	// Drift is the object's open drift, from the syncs that own it;
	// DriftKnown is false when none of them tracks drift.
	Drift      []Drift
	DriftKnown bool
	// Writers are the field managers other than tether that write the
	// object, with the fields they own (as `tether why` prints them).
	Writers []tsync.Writer
	// Notes are what the page could not read.
	Notes []string
}

// ownerView is a sync that lists the object.
type ownerView struct {
	Sync      string
	Link      string
	ConfigMap string
	Entry     inventory.Entry
}

// diffLine is one line of the diff, with its kind (add, del, hunk or "").
type diffLine struct {
	Kind, Text string
}

// notVisible answers an object page the user may not see, the same way
// whether the object exists or not.
const notVisible = "No sync you may read owns this object."

// objectPage shows one object. Which syncs own it is settled first, from
// the inventories alone, and nothing is read or reported about the object
// unless one of them is a sync the user may read: for anyone else an
// object of another sync and an object that does not exist get the same
// 404.
func (s *Server) objectPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	id, err := parseObjectPath(r.PathValue("ref"))
	if err != nil {
		s.renderError(w, r, http.StatusNotFound, "Not an object: "+err.Error())
		return
	}
	if v.status.InventoryNamespace == "" {
		s.renderError(w, r, http.StatusServiceUnavailable, "The agent has not loaded its configuration yet.")
		return
	}
	if len(v.visible) == 0 {
		// Nothing to show, so nothing to read.
		s.renderError(w, r, http.StatusNotFound, notVisible)
		return
	}
	owners, ownersErr := s.opts.Source.Owners(r.Context(), v.status.InventoryNamespace, id)
	var mine []inventory.Owner
	for _, o := range owners {
		if _, ok := v.find(o.Inventory.Sync); ok {
			mine = append(mine, o)
		}
	}
	var notes []string
	if ownersErr != nil {
		// The error may name other syncs' inventories: the log gets it,
		// the page only says that something could not be read.
		s.opts.Log.Warn("reading the inventories for the page", "object", contract.ObjectRef(id), "error", ownersErr)
		if len(owners) == 0 {
			// The same answer for every object: the inventories could not
			// be read, whatever was asked for.
			s.renderError(w, r, http.StatusServiceUnavailable, "The inventories could not be read, so it is not known which sync owns this object; try again shortly.")
			return
		}
		notes = append(notes, "Some inventories could not be read: the object may have more owners than shown.")
	}
	if len(mine) == 0 {
		s.renderError(w, r, http.StatusNotFound, notVisible)
		return
	}
	detail, err := s.opts.Source.Object(r.Context(), id)
	if err != nil {
		s.opts.Log.Warn("reading an object for the page", "object", contract.ObjectRef(id), "error", err)
		s.renderError(w, r, http.StatusBadGateway, "The object could not be read: "+err.Error())
		return
	}
	var drift []Drift
	known := false
	for _, o := range mine {
		ex := s.extras(r.Context(), &v.status, o.Inventory.Sync)
		known = known || ex.Drift != nil
		for _, d := range ex.Drift {
			if d.Object == id {
				drift = append(drift, d)
			}
		}
	}
	p := s.newPage(r, v, contract.ObjectRef(id), nil)
	d := objectView(detail, mine, p.Root)
	d.Drift, d.DriftKnown = drift, known
	d.Notes = append(notes, detail.Notes...)
	p.Data = d
	if sync, ok := v.find(mine[0].Inventory.Sync); ok {
		p.Events = eventsURL(p.Root, sync.Name, fingerprint(v.status, []agent.SyncStatus{sync}))
	}
	s.render(w, http.StatusOK, "object", p)
}

// objectView builds the object page from what the source read and the
// owners the viewer may see. Secret values are masked here again, whatever
// the source did. detail is not modified (the source may keep it).
func objectView(detail *ObjectDetail, owners []inventory.Owner, root string) objectData {
	d := objectData{Ref: contract.ObjectRef(detail.ID), Detail: detail, Secret: isSecret(detail.ID.GroupKind)}
	for _, o := range owners {
		d.Owners = append(d.Owners, ownerView{
			Sync:      o.Inventory.Sync,
			Link:      root + "syncs/" + url.PathEscape(o.Inventory.Sync),
			ConfigMap: "ConfigMap/" + o.Inventory.Namespace + "/" + o.Inventory.Name(),
			Entry:     o.Entry,
		})
	}
	var live, applied map[string]any
	if detail.Live != nil {
		live = maskSecret(detail.ID.GroupKind, detail.Live.Object)
		d.ChangedIn = detail.Live.GetAnnotations()[contract.RevisionAnnotation]
		d.Writers = tsync.OtherWriters(&unstructured.Unstructured{Object: live})
	}
	applied = maskSecret(detail.ID.GroupKind, detail.Applied)
	for _, mf := range detail.Managers {
		if mf.Manager == contract.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Time != nil {
			d.AppliedAt = mf.Time.Time
		}
	}
	d.Managers = detail.Managers
	d.LiveYAML = pageYAML(live, false)
	d.AppliedYAML = pageYAML(applied, false)
	d.Diff = diffLines(pageYAML(applied, true), pageYAML(live, true), "tether's fields", "live")
	return d
}

// pageYAML renders an object for the page without managedFields (the page
// lists the managers in a table of their own); for the diff (bookkeeping
// true) also without status and the other fields only the API server sets,
// as sync leaves them out of every comparison.
func pageYAML(obj map[string]any, bookkeeping bool) string {
	if obj == nil {
		return ""
	}
	var c *unstructured.Unstructured
	if bookkeeping {
		c = tsync.WithoutServerFields(&unstructured.Unstructured{Object: obj})
	} else {
		c = (&unstructured.Unstructured{Object: obj}).DeepCopy()
		unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
	}
	out, err := yaml.Marshal(c.Object)
	if err != nil {
		return fmt.Sprintf("(cannot show as YAML: %v)", err)
	}
	return string(out)
}

// diffLines is a unified diff of two texts, line by line, with kinds for
// colour (and the +/- prefixes for everyone else).
func diffLines(from, to, fromName, toName string) []diffLine {
	if from == to {
		return nil
	}
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(from), B: difflib.SplitLines(to),
		FromFile: fromName, ToFile: toName, Context: 3,
	})
	if err != nil {
		return []diffLine{{Text: err.Error()}}
	}
	var out []diffLine
	for _, l := range strings.SplitAfter(text, "\n") {
		if l == "" {
			continue
		}
		kind := ""
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
			kind = "file"
		case strings.HasPrefix(l, "+"):
			kind = "add"
		case strings.HasPrefix(l, "-"):
			kind = "del"
		case strings.HasPrefix(l, "@@"):
			kind = "hunk"
		}
		out = append(out, diffLine{Kind: kind, Text: strings.TrimSuffix(l, "\n")})
	}
	return out
}

// sortedCounts lists an attempt's counts as "action n" in a stable order.
func sortedCounts(counts map[string]int) []string {
	var out []string
	for a, n := range counts {
		if n > 0 {
			out = append(out, fmt.Sprintf("%s %d", a, n))
		}
	}
	sort.Strings(out)
	return out
}

// phaseDuration finds a phase's duration in an attempt.
func phaseDuration(a agent.Attempt, phase string) string {
	for _, p := range a.Phases {
		if p.Phase == phase {
			return p.Duration
		}
	}
	return ""
}
