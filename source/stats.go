package source

import "sync/atomic"

// Stats are a Git source's cumulative counters since it was created, for a
// Prometheus collector (each field is a counter).
type Stats struct {
	// RefListings counts ref listings attempted (one round trip each).
	RefListings int64
	// Fetches counts pack transfers attempted, fallbacks included.
	Fetches int64
	// FallbackFetches counts the full-history transfers made because the
	// server refused to send a pinned commit that is not a branch or tag
	// tip on its own (protocol v0/v1 servers without
	// uploadpack.allowReachableSHA1InWant, over SSH).
	FallbackFetches int64
	// FetchedBytes counts pack bytes received.
	FetchedBytes int64
	// FetchedObjects counts objects in the packs received (from the pack
	// headers).
	FetchedObjects int64
	// Unchanged counts fetches that found the ref where it was and
	// transferred nothing.
	Unchanged int64
	// Published counts revisions published (checked out and made current).
	Published int64
	// Failures counts Fetch calls that returned an error.
	Failures int64
}

type counters struct {
	refListings, fetches, fallbackFetches atomic.Int64
	fetchedBytes, fetchedObjects          atomic.Int64
	unchanged, published, failures        atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		RefListings:     c.refListings.Load(),
		Fetches:         c.fetches.Load(),
		FallbackFetches: c.fallbackFetches.Load(),
		FetchedBytes:    c.fetchedBytes.Load(),
		FetchedObjects:  c.fetchedObjects.Load(),
		Unchanged:       c.unchanged.Load(),
		Published:       c.published.Load(),
		Failures:        c.failures.Load(),
	}
}
