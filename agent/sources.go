package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	gosync "sync"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/source"
)

// sources shares git sources between the syncs that follow the same
// repository, ref and credentials (one folder each of a monorepo, say): one
// clone and one checkout on disk instead of one per sync, and fetches
// coalesced, so a push that concerns a hundred syncs costs one or two ref
// listings and one fetch, not a hundred of each racing for the same
// timeout. Each sync still renders its own path from the shared checkout.
type sources struct {
	dir string // folder of the shared checkouts

	mu     gosync.Mutex
	shared map[string]*sharedGit
}

// sharedCheckouts is how many checkouts a shared source keeps on disk.
const sharedCheckouts = 4

// sharedDir is the folder under the data folder that holds shared
// sources. Syncs have folders of their own names beside it, DNS labels,
// which never contain '_': no sync's folder is ever this one.
const sharedDir = "_shared"

func newSources(dataDir string) *sources {
	return &sources{dir: filepath.Join(dataDir, sharedDir), shared: map[string]*sharedGit{}}
}

// sourceKey identifies what a git source fetches: two syncs with the same
// key fetch the same bytes.
func sourceKey(s config.Source) string {
	data, _ := json.Marshal(struct {
		URL     string
		Ref     string
		Auth    source.Auth
		Timeout string
		MaxSize int64
	}{s.URL, s.Ref.String(), s.Auth, s.Timeout.String(), s.MaxSize})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// acquire returns the shared source for s, creating it for the first sync
// that needs it; release it when the sync stops.
func (ss *sources) acquire(s config.Source, newGit func(dir string) (*source.Git, error)) (*sharedGit, error) {
	key := sourceKey(s)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if sg, ok := ss.shared[key]; ok {
		sg.users++
		return sg, nil
	}
	dir := filepath.Join(ss.dir, key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("source folder: %w", err)
	}
	git, err := newGit(dir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	sg := &sharedGit{key: key, fetch: git.Fetch, stats: git.Stats, users: 1, ctx: ctx, cancel: cancel, owner: ss}
	ss.shared[key] = sg
	return sg, nil
}

// sharedGit is one git source shared by syncs. Fetch coalesces: a caller
// that arrives while a fetch runs waits for the next one, which starts once
// the running one ends and serves everyone who arrived meanwhile; so every
// caller gets a fetch that started after it asked (a pushed commit is never
// missed), and a burst of callers costs at most two fetches.
type sharedGit struct {
	key    string
	fetch  func(context.Context) (*source.Artifact, error)
	stats  func() source.Stats
	owner  *sources
	ctx    context.Context
	cancel context.CancelFunc

	users int // guarded by owner.mu

	mu      gosync.Mutex // guards running, next and reporter
	running bool
	next    *fetchCall
	// reporter is the user that reports the source's counters.
	reporter any
	runs     gosync.WaitGroup
}

// fetchCall is one fetch, shared by the callers waiting for it.
type fetchCall struct {
	done chan struct{}
	art  *source.Artifact
	err  error
	// callers counts who waits for it (guarded by sharedGit.mu; read by
	// tests to know when callers queued).
	callers int
}

// Fetch returns the newest revision from a fetch that started after the
// call.
func (sg *sharedGit) Fetch(ctx context.Context) (*source.Artifact, error) {
	sg.mu.Lock()
	var c *fetchCall
	if !sg.running {
		sg.running = true
		c = &fetchCall{done: make(chan struct{})}
		sg.runs.Add(1)
		go sg.run(c)
	} else {
		if sg.next == nil {
			sg.next = &fetchCall{done: make(chan struct{})}
		}
		c = sg.next
	}
	c.callers++
	sg.mu.Unlock()
	select {
	case <-c.done:
		return c.art, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run performs c and then each fetch queued meanwhile, until none is.
func (sg *sharedGit) run(c *fetchCall) {
	defer sg.runs.Done()
	for {
		c.art, c.err = sg.fetch(sg.ctx)
		close(c.done)
		sg.mu.Lock()
		c, sg.next = sg.next, nil
		if c == nil {
			sg.running = false
			sg.mu.Unlock()
			return
		}
		sg.mu.Unlock()
	}
}

// Stats returns the source's counters (shared by its syncs).
func (sg *sharedGit) Stats() source.Stats { return sg.stats() }

// reports reports whether user is the one that reports the source's
// counters, making it that one when none is.
func (sg *sharedGit) reports(user any) bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.reporter == nil {
		sg.reporter = user
	}
	return sg.reporter == user
}

// release drops user; the last one stops the source and waits for its
// fetch to end, so that a sync starting again on the same source never
// shares its folder with a fetch still running (the checkout stays on
// disk, to resume from).
func (sg *sharedGit) release(user any) {
	sg.mu.Lock()
	if sg.reporter == user {
		sg.reporter = nil
	}
	sg.mu.Unlock()
	ss := sg.owner
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sg.users--
	if sg.users > 0 {
		return
	}
	sg.cancel()
	sg.runs.Wait()
	if ss.shared[sg.key] == sg {
		delete(ss.shared, sg.key)
	}
}
