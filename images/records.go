package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/tether-gitops/tether/contract"
)

// Bounds on what the records keep, so a sync's ConfigMap stays small.
const (
	// MaxFailedTags is the number of failed tags remembered one by one per
	// policy. Past it the lowest (in the policy's order) is forgotten and
	// raises the policy's FailedWatermark, so a forgotten tag is still
	// never proposed again.
	MaxFailedTags = 50
	// MaxRollouts is the number of finished rollouts kept per policy.
	MaxRollouts = 10
)

// Records are a sync's image update records, kept in the cluster so that a
// restarted agent or a new leader knows what tether wrote, which tags
// failed and which images are held.
type Records struct {
	Version int `json:"version"`
	// Policies holds the records of each policy the sync's markers use.
	Policies map[string]*PolicyRecord `json:"policies,omitempty"`
	// Workloads holds the images last applied per workload
	// (Kind.group/namespace/name → container → image), to tell which
	// applies changed an image.
	Workloads map[string]map[string]string `json:"workloads,omitempty"`
}

// PolicyRecord is what one sync remembers about one policy.
type PolicyRecord struct {
	// LastWritten is the tag tether last committed for the policy.
	LastWritten *Written `json:"lastWritten,omitempty"`
	// LastGood is the tag whose rollout completed last: where a failed
	// rollout of a tag tether wrote is rolled back to.
	LastGood string `json:"lastGood,omitempty"`
	// Failed are tags whose rollout failed: never proposed again.
	Failed []Failure `json:"failed,omitempty"`
	// FailedWatermark is the highest (in the policy's order) of the failed
	// tags forgotten past MaxFailedTags: no tag at or below it is proposed,
	// except LastGood for a rollback. Tags that the policy cannot compare
	// with it (another tag scheme) are not held back by it.
	FailedWatermark string `json:"failedWatermark,omitempty"`
	// Hold is set after a manual rollback.
	Hold *Hold `json:"hold,omitempty"`
	// Rollouts are the newest gated rollouts, newest last; those without
	// an outcome are still being followed.
	Rollouts []Rollout `json:"rollouts,omitempty"`
}

// Written is a write-back commit.
type Written struct {
	Tag    string    `json:"tag"`
	Commit string    `json:"commit"`
	Branch string    `json:"branch"`
	At     time.Time `json:"at"`
}

// Failure is a tag whose rollout failed.
type Failure struct {
	Tag      string `json:"tag"`
	Workload string `json:"workload"`
	// From is the tag the workload ran before (the rollback target while
	// no rollout of the policy succeeded yet).
	From   string    `json:"from,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Hold stops updates of a policy after a commit set its image back to an
// older tag than tether wrote: until a tag newer than From appears, or
// `tether images release`.
type Hold struct {
	// Tag is the tag the commit set (rolled back to).
	Tag string `json:"tag"`
	// From is the tag tether had written (rolled back from).
	From string `json:"from"`
	// Location is the file:line that was rolled back.
	Location string    `json:"location"`
	At       time.Time `json:"at"`
}

// Rollout outcomes.
const (
	RolloutProgressing = "Progressing"
	RolloutSucceeded   = "Succeeded"
	RolloutFailed      = "Failed"
	// RolloutSuperseded: a newer apply changed the image first, or the
	// workload was deleted before its rollout completed.
	RolloutSuperseded = "Superseded"
	// RolloutUnknown: the gate could not read the workload until its
	// deadline (an API outage, missing permissions). The tag is not
	// remembered as failed: nothing showed that it is bad.
	RolloutUnknown = "Unknown"
)

// Rollout is one workload rolling out to a new tag of a policy.
type Rollout struct {
	Workload  string `json:"workload"`
	Container string `json:"container"`
	// Image is the image rolled out to (name:tag).
	Image    string    `json:"image"`
	From     string    `json:"from,omitempty"`
	Tag      string    `json:"tag"`
	Revision string    `json:"revision"`
	Started  time.Time `json:"started"`
	// Outcome is RolloutProgressing until it is decided.
	Outcome  string    `json:"outcome"`
	Message  string    `json:"message,omitempty"`
	Finished time.Time `json:"finished,omitzero"`
}

// Policy returns the record of a policy, creating it.
func (r *Records) Policy(name string) *PolicyRecord {
	if r.Policies == nil {
		r.Policies = map[string]*PolicyRecord{}
	}
	p := r.Policies[name]
	if p == nil {
		p = &PolicyRecord{}
		r.Policies[name] = p
	}
	return p
}

// HasFailed reports whether tag failed before (one of the failures
// remembered one by one; see Excluded for the watermark).
func (p *PolicyRecord) HasFailed(tag string) bool {
	return slices.ContainsFunc(p.Failed, func(f Failure) bool { return f.Tag == tag })
}

// failure returns the remembered failure of tag.
func (p *PolicyRecord) failure(tag string) (Failure, bool) {
	i := slices.IndexFunc(p.Failed, func(f Failure) bool { return f.Tag == tag })
	if i < 0 {
		return Failure{}, false
	}
	return p.Failed[i], true
}

// Excluded reports whether tag may not be proposed under policy pol: it
// failed, or it is at or below the watermark of forgotten failures (and
// is not LastGood).
func (p *PolicyRecord) Excluded(tag string, pol *Policy) bool {
	if p.HasFailed(tag) {
		return true
	}
	if p.FailedWatermark == "" || tag == p.LastGood || pol == nil {
		return false
	}
	if tag == p.FailedWatermark {
		return true
	}
	newer, ok := pol.Newer(tag, p.FailedWatermark)
	return ok && !newer
}

// LastFailure is when the newest remembered failure happened (zero when
// none).
func (p *PolicyRecord) LastFailure() time.Time {
	var t time.Time
	for _, f := range p.Failed {
		if f.At.After(t) {
			t = f.At
		}
	}
	return t
}

// Fail remembers a failed tag (once). Past MaxFailedTags it forgets the
// lowest failed tag in pol's order (the oldest failure when pol is nil or
// cannot order them) and raises FailedWatermark to it, so the forgotten
// tag stays excluded.
func (p *PolicyRecord) Fail(f Failure, pol *Policy) {
	if p.HasFailed(f.Tag) {
		return
	}
	if f.Tag == p.LastGood {
		// Good once, failed now: no longer where a rollback goes, and
		// not let through the watermark once this failure is forgotten.
		// The tag the workload ran before is good as far as is known.
		p.LastGood = ""
		if f.From != "" && f.From != f.Tag && !p.HasFailed(f.From) {
			p.LastGood = f.From
		}
	}
	p.Failed = append(p.Failed, f)
	for len(p.Failed) > MaxFailedTags {
		i := p.lowestFailed(pol)
		gone := p.Failed[i].Tag
		p.Failed = slices.Delete(slices.Clone(p.Failed), i, i+1)
		if pol == nil {
			continue
		}
		if _, ok := pol.Key(gone); !ok {
			continue // not a candidate of the policy: nothing to hold back
		}
		if p.FailedWatermark == "" {
			p.FailedWatermark = gone
		} else if newer, ok := pol.Newer(gone, p.FailedWatermark); newer || !ok {
			p.FailedWatermark = gone
		}
	}
}

// Succeeded records that a rollout of tag completed: the last good tag,
// unless tag failed another rollout (a policy that drives two workloads),
// which keeps the last good tag where it was.
func (p *PolicyRecord) Succeeded(tag string) {
	if !p.HasFailed(tag) {
		p.LastGood = tag
	}
}

// lowestFailed is the index of the failure to forget: the lowest tag the
// policy orders, else the oldest failure; never the newest failure (the
// one just added), which the status and the alert report.
func (p *PolicyRecord) lowestFailed(pol *Policy) int {
	low := -1
	if pol != nil {
		for i, f := range p.Failed[:len(p.Failed)-1] {
			if _, ok := pol.Key(f.Tag); !ok {
				return i // a tag of no interest to the policy goes first
			}
			if low < 0 {
				low = i
				continue
			}
			if newer, ok := pol.Newer(p.Failed[low].Tag, f.Tag); ok && newer {
				low = i
			}
		}
	}
	if low >= 0 {
		return low
	}
	return 0
}

// Record adds or replaces (same workload and tag) a rollout, keeping the
// pending ones and the newest MaxRollouts finished ones.
func (p *PolicyRecord) Record(r Rollout) {
	p.Rollouts = slices.DeleteFunc(p.Rollouts, func(x Rollout) bool { return x.Workload == r.Workload && x.Tag == r.Tag })
	p.Rollouts = append(p.Rollouts, r)
	finished := 0
	for _, x := range p.Rollouts {
		if x.Outcome != RolloutProgressing {
			finished++
		}
	}
	for i := 0; finished > MaxRollouts && i < len(p.Rollouts); {
		if p.Rollouts[i].Outcome != RolloutProgressing {
			p.Rollouts = slices.Delete(p.Rollouts, i, i+1)
			finished--
			continue
		}
		i++
	}
}

// ErrUnchanged, returned by an Update function, skips the write.
var ErrUnchanged = errors.New("records unchanged")

// RecordsName is the ConfigMap holding a sync's records.
func RecordsName(sync string) string { return contract.ImageRecordsPrefix + sync }

// Store reads and writes records ConfigMaps in one namespace.
type Store struct {
	client    typedcorev1.ConfigMapsGetter
	namespace string
}

// NewStore keeps records in namespace.
func NewStore(client typedcorev1.ConfigMapsGetter, namespace string) *Store {
	return &Store{client: client, namespace: namespace}
}

// Load reads a sync's records (empty when there are none).
func (s *Store) Load(ctx context.Context, sync string) (*Records, error) {
	cm, err := s.client.ConfigMaps(s.namespace).Get(ctx, RecordsName(sync), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &Records{Version: contract.ImageRecordsVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap/%s/%s: %w", s.namespace, RecordsName(sync), err)
	}
	return decodeRecords(cm)
}

func decodeRecords(cm *corev1.ConfigMap) (*Records, error) {
	rec := &Records{}
	raw := cm.Data[contract.ImageRecordsKey]
	if raw == "" {
		return &Records{Version: contract.ImageRecordsVersion}, nil
	}
	if err := json.Unmarshal([]byte(raw), rec); err != nil {
		return nil, fmt.Errorf("ConfigMap/%s/%s: key %s: %w", cm.Namespace, cm.Name, contract.ImageRecordsKey, err)
	}
	if rec.Version > contract.ImageRecordsVersion {
		return nil, fmt.Errorf("ConfigMap/%s/%s: records version %d is newer than this tether understands (%d): upgrade tether", cm.Namespace, cm.Name, rec.Version, contract.ImageRecordsVersion)
	}
	rec.Version = contract.ImageRecordsVersion
	return rec, nil
}

// Update reads a sync's records, lets fn change them and writes them back,
// retrying when someone else wrote in between (optimistic concurrency on
// the ConfigMap's resourceVersion). fn may run more than once.
func (s *Store) Update(ctx context.Context, sync string, fn func(*Records) error) (*Records, error) {
	name := RecordsName(sync)
	for attempt := 0; ; attempt++ {
		cm, err := s.client.ConfigMaps(s.namespace).Get(ctx, name, metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return nil, fmt.Errorf("reading ConfigMap/%s/%s: %w", s.namespace, name, err)
		}
		if create {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: s.namespace,
				Labels: map[string]string{contract.ImageRecordsLabel: sync, contract.ManagedByLabel: contract.ManagedByValue},
			}}
		}
		rec, err := decodeRecords(cm)
		if err != nil {
			return nil, err
		}
		if err := fn(rec); errors.Is(err, ErrUnchanged) {
			return rec, nil
		} else if err != nil {
			return nil, err
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[contract.ImageRecordsKey] = string(data)
		if create {
			_, err = s.client.ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: contract.FieldManager})
		} else {
			_, err = s.client.ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: contract.FieldManager})
		}
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("writing ConfigMap/%s/%s: %w", s.namespace, name, err)
		}
		return rec, nil
	}
}

// List reads the records of every sync in the namespace, by sync name.
// Records that cannot be decoded are left out and named in the error,
// returned with the others.
func (s *Store) List(ctx context.Context) (map[string]*Records, error) {
	list, err := s.client.ConfigMaps(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: contract.ImageRecordsLabel})
	if err != nil {
		return nil, fmt.Errorf("listing image records in %s: %w", s.namespace, err)
	}
	out := map[string]*Records{}
	var bad []error
	for i := range list.Items {
		cm := &list.Items[i]
		rec, err := decodeRecords(cm)
		if err != nil {
			bad = append(bad, err) // the others are still returned
			continue
		}
		out[cm.Labels[contract.ImageRecordsLabel]] = rec
	}
	return out, errors.Join(bad...)
}
