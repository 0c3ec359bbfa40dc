// Package gitserver serves bare git repositories over smart HTTP with git's
// own git-http-backend (behind net/http/cgi), for tests and the demo. It can
// require basic auth or a bearer token and serve HTTPS with its own CA, and it
// counts the requests it answers so tests can prove a client stayed quiet.
//
// Repositories are created and changed with the git command line through a
// work tree that pushes over HTTP, as a user would.
package gitserver

import (
	"bytes"
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// BackendPath is where Debian's git package installs git-http-backend.
const BackendPath = "/usr/lib/git-core/git-http-backend"

// Options configure a Server.
type Options struct {
	// Username and Password, when set, require HTTP basic auth.
	Username, Password string
	// BearerToken, when set, requires "Authorization: Bearer <token>"
	// (basic auth with the token as password is accepted too, as GitHub
	// and GitLab do).
	BearerToken string
	// TLS serves HTTPS with a certificate from a test CA (see CACertPEM).
	TLS bool
	// Root holds the bare repositories; default: a new temporary folder.
	Root string
	// BeforePush, when set, is called before each push (git-receive-pack
	// POST) is served: a test can land another commit first.
	BeforePush func(r *http.Request)
}

// Server is a running git smart HTTP server.
type Server struct {
	// URL is the base URL; repositories are at URL/NAME.git.
	URL string
	// Root holds the bare repositories.
	Root string

	opts     Options
	srv      *httptest.Server
	tmp      string
	counts   sync.Map // string -> *atomic.Int64
	authFail atomic.Int64
}

// Start serves the repositories under opts.Root (or a new temporary folder).
func Start(opts Options) (*Server, error) {
	if _, err := os.Stat(BackendPath); err != nil {
		return nil, fmt.Errorf("git-http-backend not found at %s (install git: `make deps`): %w", BackendPath, err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("the git command is not installed (run `make deps`): %w", err)
	}
	s := &Server{opts: opts}
	tmp, err := os.MkdirTemp("", "tether-git-")
	if err != nil {
		return nil, err
	}
	s.tmp = tmp
	s.Root = opts.Root
	if s.Root == "" {
		s.Root = filepath.Join(tmp, "repos")
		if err := os.MkdirAll(s.Root, 0o755); err != nil {
			return nil, err
		}
	}
	backend := &cgi.Handler{
		Path: BackendPath,
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + tmp,
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			s.authFail.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="tether-test-git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		kind := classify(r)
		s.count(kind)
		if kind == "receive-pack" && s.opts.BeforePush != nil {
			s.opts.BeforePush(r)
		}
		backend.ServeHTTP(w, r)
	})
	if opts.TLS {
		s.srv = httptest.NewTLSServer(handler)
	} else {
		s.srv = httptest.NewServer(handler)
	}
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server and removes its temporary folder.
func (s *Server) Close() {
	s.srv.Close()
	_ = os.RemoveAll(s.tmp)
}

// CACertPEM is the PEM certificate clients must trust when TLS is on.
func (s *Server) CACertPEM() []byte {
	if s.srv.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// RepoURL is the clone URL of repository name, without credentials.
func (s *Server) RepoURL(name string) string { return s.URL + "/" + name + ".git" }

// Requests returns how many requests of each kind the server answered:
// "info/refs upload-pack" (a ref listing), "upload-pack" (a fetch),
// "info/refs receive-pack", "receive-pack" (a push), "other".
func (s *Server) Requests() map[string]int64 {
	out := map[string]int64{}
	s.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// Count is the number of answered requests of one kind (see Requests).
func (s *Server) Count(kind string) int64 {
	if v, ok := s.counts.Load(kind); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// AuthFailures counts the requests refused for missing or wrong credentials.
func (s *Server) AuthFailures() int64 { return s.authFail.Load() }

func (s *Server) count(kind string) {
	v, _ := s.counts.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func classify(r *http.Request) string {
	switch {
	case strings.HasSuffix(r.URL.Path, "/info/refs"):
		return "info/refs " + strings.TrimPrefix(r.URL.Query().Get("service"), "git-")
	case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
		return "upload-pack"
	case strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
		return "receive-pack"
	}
	return "other"
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Username == "" && s.opts.BearerToken == "" {
		return true
	}
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	if s.opts.BearerToken != "" {
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") && eq(strings.TrimPrefix(h, "Bearer "), s.opts.BearerToken) {
			return true
		}
		if _, pass, ok := r.BasicAuth(); ok && eq(pass, s.opts.BearerToken) {
			return true
		}
	}
	if s.opts.Username != "" {
		if user, pass, ok := r.BasicAuth(); ok && eq(user, s.opts.Username) && eq(pass, s.opts.Password) {
			return true
		}
	}
	return false
}

// Repo is a bare repository on the server with a work tree for changing it.
type Repo struct {
	// Name is the repository name (its URL is Server.RepoURL(Name)).
	Name string
	// URL is the clone URL, without credentials.
	URL string
	// Bare is the bare repository's folder.
	Bare string
	// Work is the work tree commits are made in.
	Work string

	pushURL string
	env     []string
	mu      sync.Mutex
}

// CreateRepo makes an empty bare repository NAME.git that accepts pushes,
// and a work tree (on branch main) that pushes to it over HTTP.
func (s *Server) CreateRepo(name string) (*Repo, error) {
	bare := filepath.Join(s.Root, name+".git")
	if _, err := os.Stat(bare); err == nil {
		return nil, fmt.Errorf("repository %s already exists", name)
	}
	r := &Repo{Name: name, URL: s.RepoURL(name), Bare: bare, Work: filepath.Join(s.tmp, "work", name)}
	r.env = []string{
		"GIT_CONFIG_NOSYSTEM=1",
		"HOME=" + s.tmp,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=tether e2e", "GIT_AUTHOR_EMAIL=e2e@tether.invalid",
		"GIT_COMMITTER_NAME=tether e2e", "GIT_COMMITTER_EMAIL=e2e@tether.invalid",
	}
	if s.opts.TLS {
		ca := filepath.Join(s.tmp, "ca.pem")
		if err := os.WriteFile(ca, s.CACertPEM(), 0o644); err != nil {
			return nil, err
		}
		r.env = append(r.env, "GIT_SSL_CAINFO="+ca)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, err
	}
	switch {
	case s.opts.Username != "":
		u.User = url.UserPassword(s.opts.Username, s.opts.Password)
	case s.opts.BearerToken != "":
		u.User = url.UserPassword("token", s.opts.BearerToken)
	}
	r.pushURL = u.String()
	if _, err := r.git(s.Root, "init", "--quiet", "--bare", "--initial-branch=main", bare); err != nil {
		return nil, err
	}
	if _, err := r.git(bare, "config", "http.receivepack", "true"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.Work, 0o755); err != nil {
		return nil, err
	}
	if _, err := r.git(r.Work, "init", "--quiet", "--initial-branch=main"); err != nil {
		return nil, err
	}
	if _, err := r.git(r.Work, "remote", "add", "origin", r.pushURL); err != nil {
		return nil, err
	}
	return r, nil
}

// Commit writes files (path → content; an empty content deletes the file)
// in the work tree on the current branch, commits them with msg and pushes
// the branch. It returns the new commit's SHA.
func (r *Repo) Commit(msg string, files map[string]string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(r.Work, filepath.FromSlash(p))
		if files[p] == "" {
			if err := os.RemoveAll(full); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(files[p]), 0o644); err != nil {
			return "", err
		}
	}
	return r.commitAndPush(msg, false)
}

// CopyDir copies a folder of files into the work tree under dst (relative),
// replacing what was there, commits and pushes. It returns the commit SHA.
func (r *Repo) CopyDir(msg, src, dst string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	target := filepath.Join(r.Work, filepath.FromSlash(dst))
	entries, err := os.ReadDir(target)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(target, e.Name())); err != nil {
				return "", err
			}
		}
	}
	if err := os.CopyFS(target, os.DirFS(src)); err != nil {
		return "", fmt.Errorf("copying %s: %w", src, err)
	}
	return r.commitAndPush(msg, false)
}

// Amend replaces the last commit with one holding files (as Commit) and
// force-pushes it, rewriting the branch's history. It returns the new SHA.
func (r *Repo) Amend(msg string, files map[string]string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, content := range files {
		full := filepath.Join(r.Work, filepath.FromSlash(p))
		if content == "" {
			_ = os.RemoveAll(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := r.git(r.Work, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := r.git(r.Work, "commit", "--quiet", "--amend", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	return r.push(true)
}

func (r *Repo) commitAndPush(msg string, force bool) (string, error) {
	if _, err := r.git(r.Work, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := r.git(r.Work, "commit", "--quiet", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	return r.push(force)
}

func (r *Repo) push(force bool) (string, error) {
	branch, err := r.git(r.Work, "rev-parse", "--abbrev-ref", "HEAD")
	if err != nil {
		return "", err
	}
	args := []string{"push", "--quiet", "origin", "HEAD:refs/heads/" + branch}
	if force {
		args = append(args, "--force")
	}
	if _, err := r.git(r.Work, args...); err != nil {
		return "", err
	}
	return r.git(r.Work, "rev-parse", "HEAD")
}

// Tag creates a lightweight (or, with a message, annotated) tag at HEAD and
// pushes it.
func (r *Repo) Tag(name, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	args := []string{"tag", name}
	if message != "" {
		args = []string{"tag", "-a", "-m", message, name}
	}
	if _, err := r.git(r.Work, args...); err != nil {
		return err
	}
	_, err := r.git(r.Work, "push", "--quiet", "origin", "refs/tags/"+name)
	return err
}

// Branch creates branch name at HEAD, checks it out and pushes it.
func (r *Repo) Branch(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.git(r.Work, "checkout", "--quiet", "-B", name); err != nil {
		return err
	}
	_, err := r.git(r.Work, "push", "--quiet", "origin", "HEAD:refs/heads/"+name)
	return err
}

// Checkout switches the work tree to an existing local branch.
func (r *Repo) Checkout(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.git(r.Work, "checkout", "--quiet", name)
	return err
}

// DeleteRemoteRef deletes a ref (refs/heads/x or refs/tags/x) on the server.
func (r *Repo) DeleteRemoteRef(ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.git(r.Work, "push", "--quiet", "origin", ":"+ref)
	return err
}

// Git runs a git command in the work tree and returns its trimmed output.
func (r *Repo) Git(args ...string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.git(r.Work, args...)
}

// GitInput runs a git command in the work tree with stdin as its standard
// input (for plumbing such as mktree) and returns its trimmed output.
func (r *Repo) GitInput(stdin string, args ...string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run(r.Work, strings.NewReader(stdin), args...)
}

// LsRemote runs `git ls-remote` against the server over HTTP and returns
// ref → SHA.
func (r *Repo) LsRemote() (map[string]string, error) {
	out, err := r.Git("ls-remote", r.pushURL)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if sha, ref, ok := strings.Cut(line, "\t"); ok {
			refs[ref] = sha
		}
	}
	return refs, nil
}

func (r *Repo) git(dir string, args ...string) (string, error) {
	return r.run(dir, nil, args...)
}

func (r *Repo) run(dir string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), r.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		// The push URL carries test credentials; keep them out of errors.
		msg := strings.ReplaceAll(errOut.String(), r.pushURL, r.URL)
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(redactArgs(args, r.pushURL, r.URL), " "), err, strings.TrimSpace(msg))
	}
	return strings.TrimSpace(out.String()), nil
}

func redactArgs(args []string, secret, public string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, secret, public)
	}
	return out
}
