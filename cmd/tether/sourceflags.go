package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tether-gitops/tether/source"
	"github.com/tether-gitops/tether/sync"
)

// sourceFlags say where the manifests come from: a local folder (DIR
// argument) or a git repository (--repo, --ref, --path).
type sourceFlags struct {
	repo, ref, path, root string
	auth                  source.Auth
	timeout               time.Duration
	maxSize               string
	workDir               string
}

func (f *sourceFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "git repository URL (https://, http://, ssh:// or user@host:path); instead of a DIR argument")
	fs.StringVar(&f.ref, "ref", "main", "with --repo: branch, tag, full commit SHA, refs/heads/X, refs/tags/X, or semver:RANGE (highest matching tag)")
	fs.StringVar(&f.path, "path", ".", "with --repo: folder in the repository to render")
	fs.StringVar(&f.root, "root", "", "with DIR: the folder the build may read (default: the enclosing git work tree, or DIR)")
	fs.StringVar(&f.auth.Username, "username", "", "HTTP basic auth user name")
	fs.StringVar(&f.auth.PasswordFile, "password-file", "", "file holding the HTTP basic auth password")
	fs.StringVar(&f.auth.PasswordEnv, "password-env", "", "environment variable holding the HTTP basic auth password")
	fs.StringVar(&f.auth.BearerTokenFile, "bearer-token-file", "", "file holding an HTTP bearer token")
	fs.StringVar(&f.auth.BearerTokenEnv, "bearer-token-env", "", "environment variable holding an HTTP bearer token")
	fs.StringVar(&f.auth.CAFile, "ca-file", "", "PEM bundle to trust for HTTPS, besides the system roots")
	fs.BoolVar(&f.auth.AllowInsecureHTTP, "allow-insecure-http", false, "allow sending a password or token to an http:// URL (readable by anyone on the path)")
	fs.StringVar(&f.auth.SSHKeyFile, "ssh-key-file", "", "SSH private key file")
	fs.StringVar(&f.auth.SSHPassphraseFile, "ssh-passphrase-file", "", "file holding the SSH key's passphrase")
	fs.StringVar(&f.auth.KnownHostsFile, "known-hosts", "", "known_hosts file with the SSH server's host key (required for SSH)")
	fs.BoolVar(&f.auth.InsecureIgnoreHostKey, "insecure-ignore-host-key", false, "accept any SSH host key (insecure; warns on every fetch)")
	fs.DurationVar(&f.timeout, "fetch-timeout", 2*time.Minute, "time limit for fetching the repository")
	fs.StringVar(&f.maxSize, "max-checkout-size", "64Mi", "largest checkout accepted: bytes or a quantity such as 256Mi (at most 4Gi)")
}

// resolve fetches (or locates) the source and returns the sync input and a
// cleanup function for whatever it fetched.
func (f *sourceFlags) resolve(ctx context.Context, a *app, args []string) (sync.Input, func(), error) {
	noop := func() {}
	switch {
	case f.repo != "" && len(args) > 0:
		return sync.Input{}, noop, usageError("give either a DIR or --repo, not both")
	case f.repo == "" && len(args) != 1:
		return sync.Input{}, noop, usageError("give a DIR to render, or --repo URL [--ref REF] [--path PATH]")
	case f.repo != "":
		return f.fetchGit(ctx, a)
	}
	return f.local(args[0])
}

func (f *sourceFlags) fetchGit(ctx context.Context, a *app) (sync.Input, func(), error) {
	noop := func() {}
	ref, err := source.ParseRef(f.ref)
	if err != nil {
		return sync.Input{}, noop, usageError("--ref: %v", err)
	}
	if f.timeout <= 0 {
		return sync.Input{}, noop, usageError("--fetch-timeout: %v is not a positive duration", f.timeout)
	}
	maxSize, err := resource.ParseQuantity(f.maxSize)
	if err != nil || maxSize.Sign() <= 0 || maxSize.Value() > source.MaxSizeLimit {
		return sync.Input{}, noop, usageError("--max-checkout-size: %q is not a size between 1 byte and 4Gi", f.maxSize)
	}
	dir := f.workDir
	cleanup := noop
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tether-fetch-"); err != nil {
			return sync.Input{}, noop, err
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
	}
	git, err := source.NewGit(source.GitOptions{
		URL: f.repo, Ref: ref, Dir: dir, Auth: f.auth, Timeout: f.timeout, MaxSize: maxSize.Value(),
		Getenv: a.getenv, Logger: a.log,
	})
	if err != nil {
		cleanup()
		return sync.Input{}, noop, err
	}
	art, err := git.Fetch(ctx)
	if err != nil {
		cleanup()
		return sync.Input{}, noop, err
	}
	a.log.Info("fetched", "repo", source.Redact(f.repo), "revision", art.Revision, "subject", art.Commit.Subject)
	return sync.Input{Root: art.Dir, Path: f.path, Revision: art.Revision}, cleanup, nil
}

// local renders a folder on disk. The build may read the enclosing git
// work tree (so overlays can reach their bases), or --root.
func (f *sourceFlags) local(dir string) (sync.Input, func(), error) {
	noop := func() {}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return sync.Input{}, noop, err
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return sync.Input{}, noop, usageError("%s is not a folder", dir)
	}
	root := f.root
	if root == "" {
		root = enclosingWorkTree(abs)
	}
	if root, err = filepath.Abs(root); err != nil {
		return sync.Input{}, noop, err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) >= 3 && rel[:3] == ".."+string(filepath.Separator) {
		return sync.Input{}, noop, usageError("%s is not inside --root %s", dir, root)
	}
	// The revision of a local folder is the hash of what it renders to
	// (sync fills it in), not of the folder: the work tree may hold far
	// more than the build reads.
	return sync.Input{Root: root, Path: filepath.ToSlash(rel)}, noop, nil
}

// enclosingWorkTree is the nearest folder at or above dir holding .git, or
// dir itself.
func enclosingWorkTree(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
