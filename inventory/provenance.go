package inventory

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// provenance is the JSON document under contract.InventoryProvenanceKey,
// version contract.InventoryProvenanceVersion:
//
//	{
//	  "version": 1,
//	  "revisions": ["main@sha1:4f2c…", "main@sha1:91ab…"],
//	  "objects": {
//	    "shop_web_apps_Deployment": {"revision": 0, "source": "apps/web/deployment.yaml", "writtenAt": "2025-01-02T03:04:05Z"},
//	    "shop_old_apps_Deployment": {"revision": 1, "source": "apps/old.yaml", "stale": true}
//	  }
//	}
//
// Object keys are the data keys (object.ObjMetadata.String()). A revision
// is stored once, in "revisions", and objects point at it by index, so
// thousands of objects rendered from one revision cost a few bytes each.
// encoding/json sorts map keys and the table is filled in key order, so the
// same inventory always encodes to the same bytes.
type provenance struct {
	Version   int                        `json:"version"`
	Revisions []string                   `json:"revisions"`
	Objects   map[string]provenanceEntry `json:"objects"`
}

// provenanceEntry is one object's provenance.
type provenanceEntry struct {
	// Revision indexes provenance.Revisions.
	Revision  int    `json:"revision"`
	Source    string `json:"source,omitempty"`
	WrittenAt string `json:"writtenAt,omitempty"`
	Stale     bool   `json:"stale,omitempty"`
}

// maxProvenanceBytes bounds the decompressed provenance document, so a
// corrupt or hostile ConfigMap cannot exhaust memory. A full inventory
// (1 MiB of ConfigMap) decompresses to a few MiB at most.
const maxProvenanceBytes = 64 << 20

// formatTime is the stored form of a time: RFC 3339 in UTC, whole seconds;
// "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// parseTime reads formatTime's output.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// encodeProvenance returns the uncompressed provenance document of entries,
// keyed by their data keys.
func encodeProvenance(entries map[string]Entry) ([]byte, error) {
	doc := provenance{
		Version:   contract.InventoryProvenanceVersion,
		Revisions: []string{},
		Objects:   make(map[string]provenanceEntry, len(entries)),
	}
	index := map[string]int{}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e := entries[k]
		i, ok := index[e.Revision]
		if !ok {
			i = len(doc.Revisions)
			index[e.Revision] = i
			doc.Revisions = append(doc.Revisions, e.Revision)
		}
		doc.Objects[k] = provenanceEntry{
			Revision:  i,
			Source:    e.Source,
			WrittenAt: formatTime(e.WrittenAt),
			Stale:     e.Stale,
		}
	}
	return json.Marshal(doc)
}

// decodeProvenance parses an uncompressed provenance document into entries
// keyed by object ID.
func decodeProvenance(data []byte) (map[object.ObjMetadata]Entry, error) {
	var doc provenance
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", contract.InventoryProvenanceKey, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("parsing %s: trailing data after the document", contract.InventoryProvenanceKey)
	}
	if doc.Version != contract.InventoryProvenanceVersion {
		return nil, fmt.Errorf("%s has version %d; this tether reads version %d", contract.InventoryProvenanceKey, doc.Version, contract.InventoryProvenanceVersion)
	}
	out := make(map[object.ObjMetadata]Entry, len(doc.Objects))
	for k, p := range doc.Objects {
		id, err := object.ParseObjMetadata(k)
		if err != nil {
			return nil, fmt.Errorf("%s: object %q: %w", contract.InventoryProvenanceKey, k, err)
		}
		if p.Revision < 0 || p.Revision >= len(doc.Revisions) {
			return nil, fmt.Errorf("%s: object %q: revision index %d out of range (%d revisions)", contract.InventoryProvenanceKey, k, p.Revision, len(doc.Revisions))
		}
		written, err := parseTime(p.WrittenAt)
		if err != nil {
			return nil, fmt.Errorf("%s: object %q: writtenAt: %w", contract.InventoryProvenanceKey, k, err)
		}
		out[id] = Entry{ID: id, Revision: doc.Revisions[p.Revision], Source: p.Source, WrittenAt: written, Stale: p.Stale}
	}
	return out, nil
}

// gzipBytes compresses data. The output depends only on data (no name or
// modification time in the header).
func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gunzipBytes decompresses data, refusing more than maxProvenanceBytes.
func gunzipBytes(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", contract.InventoryProvenanceKey, err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxProvenanceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", contract.InventoryProvenanceKey, err)
	}
	if len(out) > maxProvenanceBytes {
		return nil, errors.New("decompressing " + contract.InventoryProvenanceKey + ": more than 64 MiB")
	}
	return out, nil
}
