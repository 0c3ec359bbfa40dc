package config

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// The values this file format is identified by.
const (
	// APIVersion is the only apiVersion this package reads.
	APIVersion = "tether.dev/v1alpha1"
	// Kind is the only kind this package reads.
	Kind = "AgentConfig"
)

// Built-in defaults, used when neither a sync nor the defaults section sets
// a value.
const (
	// DefaultInterval is the poll interval (defaults.interval).
	DefaultInterval = time.Minute
	// DefaultTimeout is the per-reconcile time limit (defaults.timeout).
	DefaultTimeout = 5 * time.Minute
	// DefaultInventoryNamespace holds the inventories
	// (defaults.inventoryNamespace).
	DefaultInventoryNamespace = "tether-system"
	// DefaultNamespace is given to namespaced objects without one.
	DefaultNamespace = "default"
	// DefaultPath is the folder rendered: the repository root.
	DefaultPath = "."
	// DefaultBranch is followed when a git source sets no ref.
	DefaultBranch = "main"
	// DefaultFetchTimeout bounds one fetch (the source package's default).
	DefaultFetchTimeout = source.DefaultTimeout
	// DefaultMaxSize caps a checkout (the source package's default).
	DefaultMaxSize = int64(source.DefaultMaxSize)
)

// Lower bounds on durations: anything shorter is a mistake (a unit left
// out) or would hammer the git server or the API server.
const (
	// MinInterval bounds defaults.interval and source.interval.
	MinInterval = 5 * time.Second
	// MinTimeout bounds defaults.timeout and a sync's timeout.
	MinTimeout = 10 * time.Second
	// MinFetchTimeout bounds source.timeout.
	MinFetchTimeout = 5 * time.Second
)

// MaxFileSize bounds the size of a configuration file.
const MaxFileSize = 4 << 20

// Config is a loaded configuration with every default applied and every
// value parsed.
type Config struct {
	// Defaults holds the resolved defaults section. Its values are already
	// copied into every Sync that did not set its own.
	Defaults Defaults
	// Webhook holds the webhook settings shared by all syncs.
	Webhook Webhook
	// Syncs are the syncs in file order; names are unique.
	Syncs []Sync
	// Registries configure registry hosts (images.go).
	Registries []Registry
	// ImagePolicies are the image policies, in file order; names are
	// unique (images.go).
	ImagePolicies []ImagePolicy
}

// Defaults are the settings every sync inherits unless it sets its own.
type Defaults struct {
	// Interval is the poll interval (source.interval).
	Interval time.Duration
	// Timeout is the per-reconcile time limit (timeout).
	Timeout time.Duration
	// InventoryNamespace holds the syncs' inventory ConfigMaps; pass it to
	// Sync.SyncOptions.
	InventoryNamespace string
	// Prune is the default of prune.
	Prune bool
	// DeleteBudget is the default of deleteBudget.
	DeleteBudget tsync.Budget
	// Drift is the default drift policy: DriftCorrect, DriftWarn or
	// DriftIgnore.
	Drift string
}

// Webhook holds webhook settings.
type Webhook struct {
	// SecretFile holds the HMAC secret of every sync that sets none of its
	// own; empty when not set.
	SecretFile string
}

// Sync is one resolved sync: a source, what to render from it and how to
// apply it.
type Sync struct {
	// Name names the sync (a DNS label): its inventory and the
	// tether.dev/sync label on its objects.
	Name string
	// Source says where the manifests come from.
	Source Source
	// Path is the folder to render, relative to the repository root,
	// cleaned; "." for the root.
	Path string
	// Namespace is given to namespaced objects that have none.
	Namespace string
	// Prune deletes what the sync applied before and is gone now.
	Prune bool
	// AllowEmpty lets a revision that renders nothing prune everything.
	AllowEmpty bool
	// Wait waits for health after applying, within Timeout.
	Wait bool
	// DeleteOnRemove deletes the sync's objects when the sync is removed
	// from the configuration; off, they are left in place.
	DeleteOnRemove bool
	// Suspend keeps the sync configured but not reconciled.
	Suspend bool
	// DeleteBudget bounds deletes per reconcile; never the zero value.
	DeleteBudget tsync.Budget
	// PruneProtected lists the protected kinds the sync may prune.
	PruneProtected []string
	// Timeout is the per-reconcile time limit.
	Timeout time.Duration
	// WebhookSecretFile holds the sync's webhook HMAC secret (its own or
	// the shared one); empty when webhooks are not configured for it.
	WebhookSecretFile string
	// ImageUpdates configures image write-back (images.go); off when not
	// Enabled.
	ImageUpdates ImageUpdates
	// Drift is the drift policy: DriftCorrect, DriftWarn or DriftIgnore
	// (an object's tether.dev/drift annotation overrides it).
	Drift string
	// IgnoreDifferences leaves fields out of drift detection.
	IgnoreDifferences []tsync.IgnoreRule
}

// Source is where a sync's manifests come from: a git repository (URL) or
// a folder on disk (LocalPath); exactly one is set.
type Source struct {
	// URL is the repository URL, free of credentials.
	URL string
	// LocalPath is a folder on disk. A relative path in the file is joined
	// to the folder of the file name given to Parse, so it is absolute
	// when that name is.
	LocalPath string
	// Ref is the revision to follow (git only); a branch by default.
	Ref source.Ref
	// Interval is the poll interval.
	Interval time.Duration
	// Timeout bounds one fetch.
	Timeout time.Duration
	// MaxSize caps the bytes in a checkout.
	MaxSize int64
	// Auth holds credentials and trust settings (git only).
	Auth source.Auth
}

// IsGit reports whether the source is a git repository (else a local
// folder).
func (s Source) IsGit() bool { return s.URL != "" }

// GitOptions maps a git source onto source.GitOptions, working in dir. The
// caller sets Getenv and Logger.
func (s Source) GitOptions(dir string) source.GitOptions {
	return source.GitOptions{
		URL:     s.URL,
		Ref:     s.Ref,
		Dir:     dir,
		Auth:    s.Auth,
		Timeout: s.Timeout,
		MaxSize: s.MaxSize,
	}
}

// LocalOptions maps a local source onto source.LocalOptions, working in
// dir. The caller sets Logger.
func (s Source) LocalOptions(dir string) source.LocalOptions {
	return source.LocalOptions{Path: s.LocalPath, Dir: dir, MaxSize: s.MaxSize}
}

// SyncOptions maps the sync onto sync.Options. Concurrency and DryRun are
// left for the caller.
func (s Sync) SyncOptions(inventoryNamespace string) tsync.Options {
	return tsync.Options{
		Name:               s.Name,
		Namespace:          s.Namespace,
		InventoryNamespace: inventoryNamespace,
		Prune:              s.Prune,
		AllowEmpty:         s.AllowEmpty,
		DeleteBudget:       s.DeleteBudget,
		PruneProtected:     slices.Clone(s.PruneProtected),
		Wait:               s.Wait,
		Timeout:            s.Timeout,
		DriftPolicy:        s.Drift,
		IgnoreDifferences:  slices.Clone(s.IgnoreDifferences),
	}
}

// Equal reports whether every setting of s and o is the same, so that a
// hot reload restarts only the syncs that changed.
func (s Sync) Equal(o Sync) bool {
	return s.Name == o.Name &&
		s.Source == o.Source &&
		s.Path == o.Path &&
		s.Namespace == o.Namespace &&
		s.Prune == o.Prune &&
		s.AllowEmpty == o.AllowEmpty &&
		s.Wait == o.Wait &&
		s.DeleteOnRemove == o.DeleteOnRemove &&
		s.Suspend == o.Suspend &&
		s.DeleteBudget == o.DeleteBudget &&
		slices.Equal(s.PruneProtected, o.PruneProtected) &&
		s.Timeout == o.Timeout &&
		s.WebhookSecretFile == o.WebhookSecretFile &&
		s.ImageUpdates == o.ImageUpdates &&
		s.Drift == o.Drift &&
		sameIgnoreRules(s.IgnoreDifferences, o.IgnoreDifferences)
}

// Sync returns the sync named name.
func (c *Config) Sync(name string) (Sync, bool) {
	for _, s := range c.Syncs {
		if s.Name == name {
			return s, true
		}
	}
	return Sync{}, false
}

// Load reads and parses the configuration file at path. Problems with the
// content are reported as an *Error.
//
// Only a regular file (or a symlink to one, as a mounted ConfigMap is) is
// read: a FIFO or a device would block the open or the read, and with them
// the agent's shutdown.
func Load(path string) (*Config, error) { return LoadWith(path, Limits{}) }

// Limits are settings of the agent, outside the file, that a configuration
// is checked against. The zero Limits check nothing.
type Limits struct {
	// RenderCPULimit is the CPU time one render may take (tether's
	// --render-cpu-limit): every sync's timeout must be longer than a
	// render may run (render.HardCPULimit), or every reconcile of a
	// revision that fails by the limit would time out before its render
	// could say so.
	RenderCPULimit time.Duration
}

// LoadWith is Load, checking the configuration against lim as well.
func LoadWith(path string, lim Limits) (*Config, error) {
	data, err := source.ReadRegularFile(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return ParseWith(path, data, lim)
}

// Parse parses and validates a configuration; name is the file name used
// in messages (and the folder of a relative source.localPath). It reports
// every problem it finds, as an *Error, not just the first. It reads
// nothing but data.
func Parse(name string, data []byte) (*Config, error) { return ParseWith(name, data, Limits{}) }

// ParseWith is Parse, checking the configuration against lim as well.
func ParseWith(name string, data []byte, lim Limits) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Problems: []Problem{{File: name, Message: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}}}
	}
	d := &decoder{file: name, lim: lim}
	raw := d.document(data)
	var cfg *Config
	if raw != nil {
		cfg = d.resolve(raw)
	}
	if len(d.problems) > 0 {
		sortProblems(d.problems)
		if d.dropped > 0 {
			d.problems = append(d.problems, Problem{File: name, Message: fmt.Sprintf("%d more problems not shown", d.dropped)})
		}
		return nil, &Error{Problems: d.problems}
	}
	if cfg == nil {
		return nil, errors.New("configuration: nothing parsed") // not reached: document reports why
	}
	return cfg, nil
}
