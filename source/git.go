package source

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"golang.org/x/crypto/ssh"
)

// Git is a Source that follows a ref of a git repository over HTTPS or SSH.
// Its methods are safe for concurrent use; Fetch calls run one at a time.
type Git struct {
	opts GitOptions
	ep   endpoint
	log  *slog.Logger
	pub  *publisher

	stats   counters
	current atomic.Pointer[Artifact]

	mu sync.Mutex // serializes Fetch; guards what follows
	// object is the advertised object id the current artifact was fetched
	// for (for an annotated tag, the tag object), name its ref name.
	object, name string
	http         httpClients
}

// gitMeta is what Dir/checkouts/<name>.json records, so that a restarted
// source with the same URL and ref knows what it has and skips the fetch.
type gitMeta struct {
	URL      string `json:"url"` // redacted
	Ref      string `json:"ref"`
	Object   string `json:"object"`
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Commit   Commit `json:"commit"`
}

// NewGit validates the options (URL, scheme, ref, auth settings, that
// credential files exist) and prepares Dir. It does not contact the remote.
// If Dir already holds a checkout of the same URL and ref, and its content
// still matches the digest recorded when it was published, it becomes the
// current artifact, so a restart does not refetch an unchanged ref.
func NewGit(opts GitOptions) (*Git, error) {
	opts, ep, err := validateGit(opts)
	if err != nil {
		return nil, fmt.Errorf("git source: %w", err)
	}
	pub, err := openPublisher(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", ep.display, err)
	}
	pub.keep = opts.KeepCheckouts
	g := &Git{opts: opts, ep: ep, pub: pub}
	g.log = opts.Logger.With("url", ep.display, "ref", opts.Ref.String())
	var meta gitMeta
	if pub.readMeta(&meta) && meta.URL == ep.display && meta.Ref == opts.Ref.String() && meta.Revision != "" {
		// A checkout that does not hold what was published (a power
		// loss emptied a file) is fetched again, never served.
		if err := pub.verify(context.Background()); err != nil {
			g.log.Warn("not resuming from the published checkout; fetching again", "revision", meta.Revision, "error", err.Error())
		} else {
			g.object, g.name = meta.Object, meta.Name
			g.current.Store(&Artifact{Revision: meta.Revision, Dir: pub.dir(pub.current), Commit: meta.Commit})
			g.log.Debug("resuming from published checkout", "revision", meta.Revision)
		}
	}
	if ep.scheme == "http" && opts.Auth.AllowInsecureHTTP {
		g.log.Warn("credentials will be sent over plain http (allowInsecureHTTP); use https")
	}
	return g, nil
}

// Stats returns the cumulative counters.
func (g *Git) Stats() Stats { return g.stats.snapshot() }

// Current returns the last published artifact, or nil before the first
// successful Fetch. It does not contact the remote.
func (g *Git) Current() *Artifact { return g.current.Load() }

// Fetch lists the remote's refs and, if the ref moved since the last
// fetch, fetches it (shallow) and publishes the new checkout. When the ref
// did not move it returns the current artifact after that one round trip;
// a pinned commit, once fetched, needs none. On error nothing is published
// and Current is unchanged; the error names the URL (redacted) and the ref.
func (g *Git) Fetch(ctx context.Context) (*Artifact, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	var sc scrubber
	start := time.Now()
	art, err := g.fetch(ctx, &sc)
	if err != nil {
		g.stats.failures.Add(1)
		err = sc.err(fmt.Errorf("fetching %s from %s: %w", g.opts.Ref.describe(), g.ep.display, err))
		if cur := g.current.Load(); cur != nil {
			err = fmt.Errorf("%w (still serving %s)", err, cur.Revision)
		}
		g.log.Debug("fetch failed", "error", err.Error(), "duration", time.Since(start).Round(time.Millisecond))
		return nil, err
	}
	return art, nil
}

func (g *Git) fetch(ctx context.Context, sc *scrubber) (*Artifact, error) {
	cur := g.current.Load()
	if cur != nil && !dirExists(cur.Dir) {
		// Nothing is served from a directory that is gone: Current and
		// errors must not name it.
		g.log.Warn("published checkout disappeared; fetching again", "dir", cur.Dir)
		g.current.Store(nil)
		cur, g.object, g.name = nil, "", ""
	}
	if g.opts.Ref.Commit != "" && cur != nil {
		g.stats.unchanged.Add(1)
		return cur, nil // a pinned commit never moves
	}
	conn, err := g.connect(sc)
	if err != nil {
		return nil, err
	}
	sess, adv, err := g.listRefs(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	t, err := resolve(g.opts.Ref, toRemoteRefs(adv))
	if err != nil {
		return nil, err
	}
	if cur != nil && g.sameCommit(cur, t) {
		g.stats.unchanged.Add(1)
		if t.Name == g.name && t.Object == g.object {
			g.log.Debug("unchanged", "revision", cur.Revision)
			return cur, nil
		}
		// Another tag now names the same commit (a semver range moved
		// to a re-tag), or a tag was re-created: same checkout, the
		// revision string follows the name.
		return g.rename(cur, t)
	}
	return g.fetchAndPublish(ctx, conn, sess, adv, t)
}

// sameCommit reports whether t resolves to the commit of cur, so that
// nothing needs fetching: the same advertised object, the commit itself,
// or an annotated tag whose advertised peeled commit is it.
func (g *Git) sameCommit(cur *Artifact, t target) bool {
	return t.Object == g.object || t.Object == cur.Commit.Hash || t.Commit != "" && t.Commit == cur.Commit.Hash
}

// connection is how to open sessions to the remote for one Fetch, with the
// credentials read for it.
type connection struct {
	open func(ctx context.Context) (session, error)
	// openPush opens a git-receive-pack session (write-back; push.go).
	openPush func(ctx context.Context) (pushSession, error)
	// authDesc says which credentials are in use, for error messages.
	authDesc string
	trace    *httpTrace
	hostKeys *hostKeyCheck
	// over records an answer refused for its size.
	over *overLimit
}

// session is one conversation with a remote: a ref listing, then at most
// one pack request.
type session interface {
	listRefs(ctx context.Context) (*packp.AdvRefs, error)
	uploadPack(ctx context.Context, req *packp.UploadPackRequest) (io.ReadCloser, error)
	close() error
}

// listRefs opens a session and lists the remote's refs, turning failures
// into errors that say what went wrong.
func (g *Git) listRefs(ctx context.Context, conn *connection) (session, *packp.AdvRefs, error) {
	g.stats.refListings.Add(1)
	sess, err := conn.open(ctx)
	if err != nil {
		return nil, nil, g.remoteError(ctx, conn, "connecting", err)
	}
	adv, err := sess.listRefs(ctx)
	if err != nil {
		_ = sess.close()
		return nil, nil, g.remoteError(ctx, conn, "listing refs", err)
	}
	return sess, adv, nil
}

// remoteError explains a failed conversation with the remote.
func (g *Git) remoteError(ctx context.Context, conn *connection, what string, err error) error {
	where := what
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w after %s (Timeout)", where, ErrTimeout, g.opts.Timeout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", where, ctx.Err())
	}
	if over := conn.over.get(); over != nil {
		return fmt.Errorf("%s: %w", where, over)
	}
	if conn.hostKeys != nil {
		if refused := conn.hostKeys.refusal(); refused != nil {
			return fmt.Errorf("%s: %w", where, refused)
		}
	}
	status := 0
	if conn.trace != nil {
		status = conn.trace.status
	}
	switch {
	case status == 401 || errors.Is(err, transport.ErrAuthenticationRequired):
		if conn.authDesc == "" {
			return fmt.Errorf("%s: %w: the server requires credentials and none are configured (HTTP 401)", where, ErrAuthFailed)
		}
		return fmt.Errorf("%s: %w: the server refused the %s (HTTP 401)", where, ErrAuthFailed, conn.authDesc)
	case status == 403 || errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%s: %w: access denied with the %s (HTTP 403)", where, ErrAuthFailed, orNone(conn.authDesc))
	case status == 404 || errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%s: %w: repository not found (HTTP 404)", where, ErrNotRepository)
	case status >= 300:
		return fmt.Errorf("%s: the server answered HTTP %d", where, status)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%s: %w: the repository has no commits", where, ErrNotRepository)
	case g.ep.scheme == "ssh" && strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("%s: %w: the server refused the %s", where, ErrAuthFailed, conn.authDesc)
	case strings.Contains(err.Error(), "does not appear to be a git repository"),
		strings.Contains(err.Error(), "not a git repository"):
		return fmt.Errorf("%s: %w: %v", where, ErrNotRepository, err)
	case status == 200 && conn.trace != nil && !strings.HasPrefix(conn.trace.contentType, "application/x-git-"):
		return fmt.Errorf("%s: %w: the server's answer is %q, not a git ref listing (is this a repository URL?)",
			where, ErrNotRepository, conn.trace.contentType)
	}
	return fmt.Errorf("%s: %w", where, err)
}

func orNone(s string) string {
	if s == "" {
		return "no credentials"
	}
	return s
}

// connect reads the credentials (files and variables are read on every
// fetch, for rotation) and returns how to open sessions with them.
func (g *Git) connect(sc *scrubber) (*connection, error) {
	a := g.opts.Auth
	if g.ep.scheme == "ssh" {
		return g.connectSSH(sc)
	}
	conn := &connection{over: &overLimit{}}
	var auth githttp.AuthMethod
	switch {
	case a.PasswordFile != "" || a.PasswordEnv != "":
		pass, err := readSecret("password", "Password", a.PasswordFile, a.PasswordEnv, g.opts.Getenv)
		if err != nil {
			return nil, err
		}
		sc.addBasic(a.Username, pass)
		auth = &githttp.BasicAuth{Username: a.Username, Password: pass}
		conn.authDesc = fmt.Sprintf("password for user %q", a.Username)
	case a.BearerTokenFile != "" || a.BearerTokenEnv != "":
		tok, err := readSecret("bearer token", "BearerToken", a.BearerTokenFile, a.BearerTokenEnv, g.opts.Getenv)
		if err != nil {
			return nil, err
		}
		sc.addBearer(tok)
		auth = &githttp.TokenAuth{Token: tok}
		conn.authDesc = "bearer token"
	}
	var caPEM []byte
	if a.CAFile != "" {
		b, err := ReadRegularFile(a.CAFile, MaxCredentialFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		caPEM = b
	}
	client, err := g.http.get(caPEM, a.CAFile, g.opts.Getenv)
	if err != nil {
		return nil, err
	}
	conn.open = func(ctx context.Context) (session, error) {
		trace := &httpTrace{answerLimit: g.answerLimit(), over: conn.over}
		conn.trace = trace
		s, err := newHTTPSession(client, g.ep, auth)
		if err != nil {
			return nil, err
		}
		return &tracedSession{s: s, trace: trace}, nil
	}
	conn.openPush = func(ctx context.Context) (pushSession, error) {
		trace := &httpTrace{answerLimit: g.answerLimit(), over: conn.over}
		conn.trace = trace
		return newHTTPPushSession(client, g.ep, auth, trace)
	}
	return conn, nil
}

// tracedSession records the HTTP status of each call in trace.
type tracedSession struct {
	s     *httpSession
	trace *httpTrace
}

func (t *tracedSession) listRefs(ctx context.Context) (*packp.AdvRefs, error) {
	return t.s.listRefs(context.WithValue(ctx, httpTraceKey{}, t.trace))
}

func (t *tracedSession) uploadPack(ctx context.Context, req *packp.UploadPackRequest) (io.ReadCloser, error) {
	return t.s.uploadPack(context.WithValue(ctx, httpTraceKey{}, t.trace), req)
}

func (t *tracedSession) close() error { return t.s.close() }

func (g *Git) connectSSH(sc *scrubber) (*connection, error) {
	a := g.opts.Auth
	keyPEM, err := ReadRegularFile(a.SSHKeyFile, MaxCredentialFile)
	if err != nil {
		return nil, fmt.Errorf("reading the SSH key file (Auth.SSHKeyFile): %w", WithoutPath(err))
	}
	var signer ssh.Signer
	if a.SSHPassphraseFile != "" {
		pass, err := readSecret("SSH key passphrase", "SSHPassphrase", a.SSHPassphraseFile, "", g.opts.Getenv)
		if err != nil {
			return nil, err
		}
		sc.add(pass)
		signer, err = ssh.ParsePrivateKeyWithPassphrase(keyPEM, []byte(pass))
		if err != nil {
			return nil, fmt.Errorf("the SSH key file (Auth.SSHKeyFile): %w", err)
		}
	} else {
		signer, err = ssh.ParsePrivateKey(keyPEM)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("the SSH key file (Auth.SSHKeyFile) is encrypted and no passphrase file is configured")
		}
		if err != nil {
			return nil, fmt.Errorf("the SSH key file (Auth.SSHKeyFile): %w", err)
		}
	}
	user := g.ep.user
	if user == "" {
		user = "git"
	}
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
	}
	conn := &connection{authDesc: fmt.Sprintf("SSH key %s for user %q", ssh.FingerprintSHA256(signer.PublicKey()), user), over: &overLimit{}}
	if a.InsecureIgnoreHostKey {
		g.log.Warn("SSH host key checking is disabled (InsecureIgnoreHostKey): anyone on the network path can impersonate the server")
		cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	} else {
		hk, algos, err := newHostKeyCheck(a.KnownHostsFile, g.ep.hostPort())
		if err != nil {
			return nil, err
		}
		conn.hostKeys = hk
		cfg.HostKeyCallback = hk.check
		cfg.HostKeyAlgorithms = algos
	}
	conn.open = func(ctx context.Context) (session, error) {
		return dialSSH(ctx, g.ep, cfg, g.answerLimit(), conn.over)
	}
	conn.openPush = func(ctx context.Context) (pushSession, error) {
		return dialSSHService(ctx, g.ep, cfg, receivePackService, g.answerLimit(), conn.over)
	}
	return conn, nil
}

// readSecret reads a secret from a file (trailing newlines dropped) or an
// environment variable; field is the Auth field name without "File" or
// "Env". Its errors name the field, never the file, the variable or the
// value: a secret pasted into the field by mistake would show.
func readSecret(what, field, file, env string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := ReadRegularFile(file, MaxCredentialFile)
		if err != nil {
			return "", fmt.Errorf("reading the %s file (Auth.%sFile): %w", what, field, WithoutPath(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("the %s file (Auth.%sFile) is empty", what, field)
		}
		return v, nil
	}
	v := getenv(env)
	if v == "" {
		return "", fmt.Errorf("the %s variable (Auth.%sEnv) is unset or empty", what, field)
	}
	return v, nil
}

func toRemoteRefs(adv *packp.AdvRefs) remoteRefs {
	rr := remoteRefs{refs: map[string]string{}, peeled: map[string]string{}}
	for name, h := range adv.References {
		rr.refs[name] = h.String()
	}
	for name, h := range adv.Peeled {
		rr.peeled[name] = h.String()
	}
	return rr
}

// rename gives the current checkout a new revision string without
// fetching: the ref now resolves to the same object under another name.
func (g *Git) rename(cur *Artifact, t target) (*Artifact, error) {
	art := *cur
	art.Revision = FormatRevision(t.Name, cur.Commit.Hash)
	meta := gitMeta{URL: g.ep.display, Ref: g.opts.Ref.String(), Object: t.Object, Name: t.Name, Revision: art.Revision, Commit: art.Commit}
	if err := g.pub.rewriteMeta(meta); err != nil {
		return nil, err
	}
	g.object, g.name = t.Object, t.Name
	g.current.Store(&art)
	g.log.Info("revision renamed", "revision", art.Revision)
	return &art, nil
}

// fetchAndPublish fetches target into a scratch object store, checks the
// commit out into a fresh directory and publishes it.
func (g *Git) fetchAndPublish(ctx context.Context, conn *connection, sess session, adv *packp.AdvRefs, t target) (*Artifact, error) {
	scratch, err := g.pub.scratch("fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	st := filesystem.NewStorageWithOptions(osfs.New(scratch), cache.NewObjectLRU(8*cache.MiByte),
		filesystem.Options{ExclusiveAccess: true, LargeObjectThreshold: 1 << 20})
	defer st.Close()

	want := plumbing.NewHash(t.Object)
	g.stats.fetches.Add(1)
	err = g.fetchPack(ctx, sess, adv, []plumbing.Hash{want}, 1, st, scratch)
	if err != nil && t.RefName == "" && strings.Contains(err.Error(), "not our ref") {
		// A protocol v0/v1 server over SSH only hands out advertised tips
		// (unless uploadpack.allowReachableSHA1InWant is set; over HTTP
		// git checks reachability instead). Fetch the history of every
		// branch and tag and look for the commit there.
		g.log.Info("the server does not send a commit that is not a branch or tag tip on its own; fetching all branches and tags in full", "commit", t.Object)
		_ = sess.close()
		sess2, adv2, lerr := g.listRefs(ctx, conn)
		if lerr != nil {
			return nil, lerr
		}
		defer sess2.close()
		var wants []plumbing.Hash
		seen := map[plumbing.Hash]bool{}
		for name, h := range adv2.References {
			if (strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/")) && !seen[h] {
				seen[h] = true
				wants = append(wants, h)
			}
		}
		if len(wants) == 0 {
			return nil, &kindError{kind: ErrRefNotFound, msg: fmt.Sprintf("commit %s is not on the remote: it has no branches or tags", t.Object)}
		}
		g.stats.fetches.Add(1)
		g.stats.fallbackFetches.Add(1)
		if err = g.fetchPack(ctx, sess2, adv2, wants, 0, st, scratch); err != nil {
			err = fmt.Errorf("commit %s is no branch or tag tip and the server only sends tips, so all history was fetched to find it: %w", t.Object, err)
		}
	}
	if err != nil {
		return nil, g.transferError(ctx, conn, err)
	}

	commit, err := peelCommit(st, want)
	if err != nil {
		if t.RefName == "" && errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, &kindError{kind: ErrRefNotFound, msg: fmt.Sprintf("commit %s is not on the remote: no branch or tag reaches it", t.Object)}
		}
		return nil, fmt.Errorf("reading fetched %s: %w", t.Object, err)
	}
	if t.Commit != "" && commit.Hash.String() != t.Commit {
		return nil, fmt.Errorf("the remote advertised %s as commit %s but sent %s", t.Name, t.Commit, commit.Hash)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading the tree of %s: %w", commit.Hash, err)
	}
	revision := FormatRevision(t.Name, commit.Hash.String())
	// Measure first: a tree over the limits writes nothing.
	if _, err := measureTree(ctx, st, tree, g.limits()); err != nil {
		return nil, g.checkoutError(ctx, revision, err)
	}
	staged, err := g.pub.stage()
	if err != nil {
		return nil, err
	}
	written, err := writeTree(ctx, st, tree, g.limits(), staged)
	if err != nil {
		_ = os.RemoveAll(staged)
		return nil, g.checkoutError(ctx, revision, err)
	}
	info := commitInfo(commit)
	meta := gitMeta{URL: g.ep.display, Ref: g.opts.Ref.String(), Object: t.Object, Name: t.Name, Revision: revision, Commit: info}
	dir, err := g.pub.publish(ctx, staged, commit.Hash.String()[:12], meta)
	if err != nil {
		_ = os.RemoveAll(staged)
		return nil, err
	}
	art := &Artifact{Revision: revision, Dir: dir, Commit: info}
	g.object, g.name = t.Object, t.Name
	g.current.Store(art)
	g.stats.published.Add(1)
	g.log.Info("published", "revision", revision, "dir", dir, "entries", written.entries, "bytes", written.size)
	return art, nil
}

func (g *Git) checkoutError(ctx context.Context, revision string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("checking out %s: %w after %s (Timeout)", revision, ErrTimeout, g.opts.Timeout)
	}
	return fmt.Errorf("checking out %s: %w", revision, err)
}

func (g *Git) transferError(ctx context.Context, conn *connection, err error) error {
	if over := conn.over.get(); over != nil {
		return fmt.Errorf("transferring: %w", over)
	}
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("transferring: %w", err)
	}
	return g.remoteError(ctx, conn, "transferring", err)
}

// wireLimit is the most pack bytes one transfer may bring: MaxSize plus
// room for commits and trees (a quarter, plus 1 MiB). It saturates rather
// than overflows.
func (g *Git) wireLimit() int64 {
	return addSat(addSat(g.opts.MaxSize, g.opts.MaxSize/4), 1<<20)
}

// answerLimit caps the server's whole answer to a fetch: the wire limit
// plus room for side-band framing, progress and acknowledgements.
func (g *Git) answerLimit() int64 {
	w := g.wireLimit()
	return addSat(w, w/64+1<<20)
}

// limits are the checkout limits of this source.
func (g *Git) limits() limits {
	return limits{maxSize: g.opts.MaxSize, maxFiles: g.opts.MaxFiles}
}

// fetchPack asks for wants (at depth, 0 for full history), spools the pack
// into a file in spoolDir (counting bytes and objects and stopping at
// wireLimit), checks it with checkPack and only then lets go-git index it
// into st.
func (g *Git) fetchPack(ctx context.Context, sess session, adv *packp.AdvRefs, wants []plumbing.Hash, depth int, st *filesystem.Storage, spoolDir string) error {
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	req.Wants = wants
	if depth > 0 && adv.Capabilities.Supports(capability.Shallow) {
		req.Depth = packp.DepthCommits(depth)
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			return err
		}
	}
	if adv.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return err
		}
	}
	res, err := sess.uploadPack(ctx, req)
	if err != nil {
		return err
	}
	defer res.Close()
	var r io.Reader = res
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		r = sideband.NewDemuxer(sideband.Sideband64k, res)
	case req.Capabilities.Supports(capability.Sideband):
		r = sideband.NewDemuxer(sideband.Sideband, res)
	}
	pr := &packReader{r: r, limit: g.wireLimit()}
	f, err := spoolPack(spoolDir, pr)
	g.stats.fetchedBytes.Add(pr.n)
	g.stats.fetchedObjects.Add(int64(pr.objects))
	if pr.over {
		return fmt.Errorf("%w: the transfer passed %s (MaxSize %s plus room for history)",
			ErrTooLarge, formatBytes(g.wireLimit()), formatBytes(g.opts.MaxSize))
	}
	if err != nil {
		return err
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	if err := checkPack(ctx, f, packLimitsFor(g.limits())); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading the spooled pack: %w", err)
	}
	if err := packfile.UpdateObjectStorage(st, f); err != nil {
		return fmt.Errorf("indexing the pack: %w", err)
	}
	g.log.Debug("fetched pack", "bytes", pr.n, "objects", pr.objects, "depth", depth)
	return nil
}

// packReader counts pack bytes, reads the object count from the pack
// header and fails once limit bytes have passed.
type packReader struct {
	r       io.Reader
	limit   int64
	n       int64
	head    [12]byte
	objects uint32
	over    bool
}

func (p *packReader) Read(b []byte) (int, error) {
	if p.n >= p.limit {
		p.over = true
		return 0, ErrTooLarge
	}
	if int64(len(b)) > p.limit-p.n {
		b = b[:p.limit-p.n+1]
	}
	n, err := p.r.Read(b)
	if p.n < 12 && n > 0 {
		copy(p.head[p.n:], b[:n])
		if p.n+int64(n) >= 12 && string(p.head[:4]) == "PACK" {
			p.objects = binary.BigEndian.Uint32(p.head[8:12])
		}
	}
	p.n += int64(n)
	if p.n > p.limit {
		p.over = true
		return n, ErrTooLarge
	}
	return n, err
}

func dirExists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
