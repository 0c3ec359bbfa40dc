package source

import (
	"context"
	"time"
)

// Artifact is one fetched revision on local disk.
type Artifact struct {
	// Revision identifies the content: for git "<ref name>@sha1:<40 hex>"
	// ("main@sha1:…", "v1.2.3@sha1:…") or "sha1:<40 hex>" for a pinned
	// commit; for a local folder "sha256:<64 hex>".
	Revision string
	// Dir is the root of the checkout. Callers only read it; it stays valid
	// at least until two more revisions are published.
	Dir string
	// Commit describes the commit; the zero value for local folders.
	Commit Commit
}

// Commit is the metadata of the commit an Artifact was checked out from,
// for status and `why`.
type Commit struct {
	// Hash is the full commit SHA-1 in hex.
	Hash string `json:"hash"`
	// Author is "Name <email>".
	Author string `json:"author"`
	// Subject is the first line of the message.
	Subject string `json:"subject"`
	// Time is the author time.
	Time time.Time `json:"time"`
}

// Source is what the sync loop and the CLI use.
type Source interface {
	// Fetch returns the current revision, fetching and publishing it if it
	// changed. When nothing changed it is a cheap no-op (one ref listing
	// for git) that returns the current artifact. On error the previously
	// published artifact stays in place.
	Fetch(ctx context.Context) (*Artifact, error)
}

var (
	_ Source = (*Git)(nil)
	_ Source = (*Local)(nil)
)
