package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Write-back (image automation) through the same connection, credentials,
// CA, host-key checks and size caps as Fetch: fetch a branch tip into an
// object store, then push one new commit on top of it.

// receivePackService is git's push service.
const receivePackService = "git-receive-pack"

// Errors of Push, for errors.Is.
var (
	// ErrPushRace means the branch moved after it was fetched (someone
	// pushed in between): fetch it again and redo the change on the new
	// tip. Push never forces.
	ErrPushRace = errors.New("the branch moved since it was fetched")
	// ErrPushRefused means the server refused the push (a protected
	// branch, no permission, a hook): trying again will not help.
	ErrPushRefused = errors.New("the server refused the push")
)

// Tip is a branch tip fetched for writing: the commit, and an object store
// holding it and its whole tree (fetched at depth 1 within the source's
// MaxSize and MaxFiles), in which new objects can be written.
type Tip struct {
	// Branch is the branch fetched.
	Branch string
	// Commit is its tip; zero when the remote has no such branch (then
	// Storer is nil).
	Commit plumbing.Hash
	// Storer holds the fetched objects and takes new ones.
	Storer *filesystem.Storage
	// Heads holds the tip of every branch FetchBranches fetched that the
	// remote has (FetchTip: the one branch, when it exists).
	Heads map[string]plumbing.Hash
	dir   string
}

// Close deletes the tip's object store.
func (t *Tip) Close() error {
	if t == nil || t.Storer == nil {
		return nil
	}
	_ = t.Storer.Close()
	return os.RemoveAll(t.dir)
}

// FetchTip fetches the tip of branch for writing. A branch the remote
// lacks is not an error: the Tip's Commit is zero. Errors name the URL
// (redacted) and never hold a credential.
func (g *Git) FetchTip(ctx context.Context, branch string) (*Tip, error) {
	return g.FetchBranches(ctx, []string{branch}, 1)
}

// FetchBranches fetches the tips of branches for writing into one object
// store, each with depth commits of history (1: the tips only), within
// the source's size limits. The Tip's Branch and Commit are the first
// branch's (Commit zero when the remote lacks it); Heads holds the tip of
// each branch the remote has. Storer is nil only when it has none of
// them. Commits past depth are not in the store: reading one fails with
// plumbing.ErrObjectNotFound.
func (g *Git) FetchBranches(ctx context.Context, branches []string, depth int) (*Tip, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	var sc scrubber
	tip, err := g.fetchTips(ctx, &sc, branches, max(depth, 1))
	if err != nil {
		return nil, sc.err(fmt.Errorf("fetching branch %s of %s for writing: %w", strings.Join(branches, ", "), g.ep.display, err))
	}
	return tip, nil
}

func (g *Git) fetchTips(ctx context.Context, sc *scrubber, branches []string, depth int) (*Tip, error) {
	conn, err := g.connect(sc)
	if err != nil {
		return nil, err
	}
	sess, adv, err := g.listRefs(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	tip := &Tip{Heads: map[string]plumbing.Hash{}}
	var wants []plumbing.Hash
	for i, b := range branches {
		want, ok := adv.References[plumbing.NewBranchReferenceName(b).String()]
		if i == 0 {
			tip.Branch, tip.Commit = b, want
		}
		if !ok {
			continue
		}
		tip.Heads[b] = want
		if !slices.Contains(wants, want) {
			wants = append(wants, want)
		}
	}
	if len(wants) == 0 {
		return tip, nil
	}
	scratch, err := g.pub.scratch("push-")
	if err != nil {
		return nil, err
	}
	st := filesystem.NewStorageWithOptions(osfs.New(scratch), cache.NewObjectLRU(8*cache.MiByte),
		filesystem.Options{ExclusiveAccess: true, LargeObjectThreshold: 1 << 20})
	tip.Storer, tip.dir = st, scratch
	g.stats.fetches.Add(1)
	if err := g.fetchPack(ctx, sess, adv, wants, depth, st, scratch); err != nil {
		_ = tip.Close()
		return nil, g.transferError(ctx, conn, err)
	}
	for _, want := range wants {
		if _, err := object.GetCommit(st, want); err != nil {
			_ = tip.Close()
			return nil, fmt.Errorf("reading the fetched tip %s: %w", want, err)
		}
	}
	return tip, nil
}

// Push sets branch from old (zero: create the branch) to commit, sending
// objects (the new commit and the trees and blobs it adds) from st. It
// never forces: the server compares the branch with old and refuses when
// it moved, which Push reports as ErrPushRace; a refusal for any other
// reason is ErrPushRefused, with the server's words.
func (g *Git) Push(ctx context.Context, st storer.EncodedObjectStorer, branch string, old, commit plumbing.Hash, objects []plumbing.Hash) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	var sc scrubber
	if err := g.push(ctx, &sc, st, branch, old, commit, objects); err != nil {
		return sc.err(fmt.Errorf("pushing branch %s to %s: %w", branch, g.ep.display, err))
	}
	return nil
}

func (g *Git) push(ctx context.Context, sc *scrubber, st storer.EncodedObjectStorer, branch string, old, commit plumbing.Hash, objects []plumbing.Hash) error {
	conn, err := g.connect(sc)
	if err != nil {
		return err
	}
	sess, err := conn.openPush(ctx)
	if err != nil {
		return refusedIfDenied(g.remoteError(ctx, conn, "connecting", err))
	}
	defer sess.close()
	adv, err := sess.listRefs(ctx)
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return refusedIfDenied(g.remoteError(ctx, conn, "listing refs", err))
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if adv != nil && adv.References[ref.String()] != old {
		return fmt.Errorf("%w: it is at %s now, not %s", ErrPushRace, shortHash(adv.References[ref.String()]), shortHash(old))
	}
	caps := capability.NewList()
	if adv != nil {
		caps = adv.Capabilities
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(caps)
	req.Commands = []*packp.Command{{Name: ref, Old: old, New: commit}}
	var pack bytes.Buffer
	if _, err := packfile.NewEncoder(&pack, st, false).Encode(objects, 0); err != nil {
		return fmt.Errorf("packing the new objects: %w", err)
	}
	req.Packfile = io.NopCloser(&pack)
	report, err := sess.receivePack(ctx, req)
	if report != nil {
		if report.UnpackStatus != "ok" {
			return fmt.Errorf("the server could not unpack the objects: %s", report.UnpackStatus)
		}
		for _, cs := range report.CommandStatuses {
			if cs.Status == "ok" {
				continue
			}
			if isRace(cs.Status) {
				return fmt.Errorf("%w: %s", ErrPushRace, cs.Status)
			}
			return fmt.Errorf("%w: %s", ErrPushRefused, cs.Status)
		}
	}
	if err != nil {
		return refusedIfDenied(g.remoteError(ctx, conn, "sending", err))
	}
	return nil
}

// isRace tells a branch that moved from other refusals in git's words.
func isRace(status string) bool {
	for _, s := range []string{"fetch first", "non-fast-forward", "stale info", "failed to update ref", "failed to lock", "cannot lock ref", "already exists"} {
		if strings.Contains(status, s) {
			return true
		}
	}
	return false
}

// refusedIfDenied marks an authorization failure as a refused push.
func refusedIfDenied(err error) error {
	if errors.Is(err, ErrAuthFailed) {
		return fmt.Errorf("%w: %w", ErrPushRefused, err)
	}
	return err
}

func shortHash(h plumbing.Hash) string {
	if h.IsZero() {
		return "(no branch)"
	}
	return h.String()[:12]
}

// pushSession is one git-receive-pack conversation: a ref listing, then
// one update request.
type pushSession interface {
	listRefs(ctx context.Context) (*packp.AdvRefs, error)
	receivePack(ctx context.Context, req *packp.ReferenceUpdateRequest) (*packp.ReportStatus, error)
	close() error
}

// httpPushSession is go-git's smart HTTP receive-pack client over the
// source's HTTP client (CA, proxy, answer caps).
type httpPushSession struct {
	s     transport.ReceivePackSession
	trace *httpTrace
}

func newHTTPPushSession(client *http.Client, ep endpoint, auth githttp.AuthMethod, trace *httpTrace) (pushSession, error) {
	c, tep, a, err := httpTransport(client, ep, auth)
	if err != nil {
		return nil, err
	}
	s, err := c.NewReceivePackSession(tep, a)
	if err != nil {
		return nil, err
	}
	return &httpPushSession{s: s, trace: trace}, nil
}

func (h *httpPushSession) listRefs(ctx context.Context) (*packp.AdvRefs, error) {
	return h.s.AdvertisedReferencesContext(context.WithValue(ctx, httpTraceKey{}, h.trace))
}

func (h *httpPushSession) receivePack(ctx context.Context, req *packp.ReferenceUpdateRequest) (*packp.ReportStatus, error) {
	return h.s.ReceivePack(context.WithValue(ctx, httpTraceKey{}, h.trace), req)
}

func (h *httpPushSession) close() error { return h.s.Close() }

// receivePack sends the update request (commands and pack) on an SSH
// git-receive-pack session and reads the server's report.
func (s *sshSession) receivePack(ctx context.Context, req *packp.ReferenceUpdateRequest) (*packp.ReportStatus, error) {
	s.packRun = true
	w := bufio.NewWriter(s.stdin)
	if err := req.Encode(w); err != nil {
		return nil, fmt.Errorf("sending the update request: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("sending the update request: %w", err)
	}
	_ = s.stdin.Close()
	if !req.Capabilities.Supports(capability.ReportStatus) {
		if err := s.sess.Wait(); err != nil {
			return nil, fmt.Errorf("git-receive-pack failed: %s", s.stderr.firstLine())
		}
		return nil, nil
	}
	report := packp.NewReportStatus()
	if err := report.Decode(&cappedReader{r: s.stdout, left: maxErrorBody, truncate: true}); err != nil {
		if msg := s.remoteMessage(ctx); msg != "" {
			return nil, fmt.Errorf("git-receive-pack failed: %s", msg)
		}
		return nil, fmt.Errorf("reading the push report: %w", err)
	}
	return report, report.Error()
}
