package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/tether-gitops/tether/render"
)

// build renders the revision into changes, one per object.
//
// Guarantees: the rendering is confined to the checkout and bounded in size
// (package render); a failed build returns an error and never an empty set,
// so nothing after it can mistake a broken commit for a deleted app. The
// objects' ids are set by normalize, once their namespaces are known.
func (r *run) build(ctx context.Context) error {
	start := r.s.now()
	resources, err := r.s.render(ctx, render.Request{
		Sync:     r.opts.Name,
		Revision: r.in.Revision,
		Options:  render.Options{Root: r.in.Root, Path: r.in.Path},
	})
	r.res.BuildDuration = r.s.now().Sub(start)
	if err != nil {
		return err
	}
	if r.in.Revision == "" {
		// A plain folder has no commit: name the revision by what it
		// renders to, so the same content is the same revision.
		if r.in.Revision, err = contentRevision(resources); err != nil {
			return err
		}
		r.res.Revision = r.in.Revision
	}
	r.res.Changes = make([]*Change, 0, len(resources))
	for _, res := range resources {
		r.res.Changes = append(r.res.Changes, &Change{
			Source:  res.Source,
			Desired: res.Object,
			gvk:     res.Object.GroupVersionKind(),
		})
	}
	r.s.log.Debug("built", "sync", r.opts.Name, "revision", r.in.Revision, "objects", len(resources))
	return nil
}

// contentRevision is "sha256:<hex>" of the rendered objects in order.
func contentRevision(resources []render.Resource) (string, error) {
	h := sha256.New()
	for _, res := range resources {
		data, err := res.Object.MarshalJSON()
		if err != nil {
			return "", err
		}
		h.Write(data)
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
