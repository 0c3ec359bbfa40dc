package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/source"
	"github.com/tether-gitops/tether/webhook"
)

// reloadDebounce is the quiet time after a change of the configuration
// folder before it is read: editors and kubelet write in several steps.
const reloadDebounce = 300 * time.Millisecond

// secretRefresh is how often webhook secrets are read again, so a rotated
// Secret takes effect without a restart.
const secretRefresh = 30 * time.Second

// watchConfig reloads the configuration when its folder changes. It
// watches the folder, not the file: a mounted ConfigMap is updated by
// kubelet swapping a "..data" symlink, and editors replace files by
// renaming, so a watch on the file itself would go deaf after the first
// change.
func (a *Agent) watchConfig(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Error("cannot watch the configuration; hot reload is off", "error", err)
		return
	}
	defer w.Close()
	dir := filepath.Dir(a.opts.ConfigPath)
	if err := w.Add(dir); err != nil {
		a.log.Error("cannot watch the configuration folder; hot reload is off", "folder", dir, "error", err)
		return
	}
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	refresh := time.NewTicker(secretRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-refresh.C:
			a.mu.Lock()
			cfg := a.cfg
			a.mu.Unlock()
			a.hooks.SetTargets(a.webhookTargets(cfg))
			a.hooks.SetRegistryTargets(a.images.registryTargets(cfg))
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !a.relevant(ev.Name) {
				continue
			}
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(reloadDebounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			a.log.Error("watching the configuration", "error", err)
		case <-fire:
			a.reload()
		}
	}
}

// relevant reports whether a change in the configuration folder may
// change the configuration: the file itself, or kubelet's ..data swap.
func (a *Agent) relevant(name string) bool {
	base := filepath.Base(name)
	return base == filepath.Base(a.opts.ConfigPath) || strings.HasPrefix(base, "..")
}

// reload reads the configuration again. A bad version is rejected: it is
// logged, reported in /status, counted and recorded as an event, and the
// running configuration stays. An unchanged file changes nothing.
func (a *Agent) reload() {
	cfg, err := config.LoadWith(a.opts.ConfigPath, a.opts.ConfigLimits)
	if err == nil && cfg.Defaults.InventoryNamespace != a.invNamespace {
		err = fmt.Errorf("%s: defaults.inventoryNamespace: changing it from %q to %q would make every sync forget what it owns (and never prune it); move the inventory ConfigMaps and restart the agent instead",
			a.opts.ConfigPath, a.invNamespace, cfg.Defaults.InventoryNamespace)
	}
	a.metrics.ConfigReload(err == nil)
	if err != nil {
		a.mu.Lock()
		a.cfgErr = err.Error()
		a.mu.Unlock()
		a.log.Error("rejected the new configuration; the previous one keeps running", "file", a.opts.ConfigPath, "error", err)
		a.agentEvent(eventWarning, reasonConfigRejected, "rejected the new configuration (the previous one keeps running): %v", err)
		return
	}
	a.mu.Lock()
	same := a.cfg != nil && sameConfig(a.cfg, cfg)
	a.mu.Unlock()
	if same {
		a.mu.Lock()
		a.cfgErr = ""
		a.mu.Unlock()
		return
	}
	a.log.Info("configuration reloaded", "file", a.opts.ConfigPath, "syncs", len(cfg.Syncs))
	a.setConfig(cfg)
}

// setConfig installs a configuration: webhook targets and, when leading,
// the running syncs.
func (a *Agent) setConfig(cfg *config.Config) {
	a.hooks.SetTargets(a.webhookTargets(cfg))
	a.hooks.SetRegistryTargets(a.images.registryTargets(cfg))
	a.images.setConfig(cfg)
	a.mu.Lock()
	a.cfg = cfg
	a.cfgErr = ""
	a.cfgLoadedAt = time.Now()
	stop := a.reconcileRunners()
	a.mu.Unlock()
	stopAll(stop)
}

// webhookTargets reads each sync's webhook secret. A sync whose secret
// cannot be read cannot be triggered (and says why in the log).
func (a *Agent) webhookTargets(cfg *config.Config) []webhook.Target {
	var out []webhook.Target
	if cfg == nil {
		return nil
	}
	for _, s := range cfg.Syncs {
		if s.WebhookSecretFile == "" {
			continue
		}
		secret, err := source.ReadRegularFile(s.WebhookSecretFile, source.MaxCredentialFile)
		if err == nil && len(strings.TrimSpace(string(secret))) == 0 {
			err = errors.New("the file is empty")
		}
		if err != nil {
			if a.secretProblem(s.Name, err.Error()) {
				a.log.Error("webhook secret unreadable; webhooks cannot trigger this sync", "sync", s.Name, "file", s.WebhookSecretFile, "error", err)
			}
			continue
		}
		if a.secretProblem(s.Name, "") {
			a.log.Info("webhook secret readable again", "sync", s.Name)
		}
		out = append(out, webhook.Target{Sync: s.Name, RepoURL: s.Source.URL, Secret: []byte(strings.TrimRight(string(secret), "\r\n"))})
	}
	return out
}

// secretProblem records the latest problem reading a sync's webhook secret
// ("" for none) and reports whether it changed, so a missing secret is
// logged once, not on every refresh.
func (a *Agent) secretProblem(sync, problem string) bool {
	a.secretMu.Lock()
	defer a.secretMu.Unlock()
	if a.secretErrs == nil {
		a.secretErrs = map[string]string{}
	}
	changed := a.secretErrs[sync] != problem
	a.secretErrs[sync] = problem
	return changed
}

func sameConfig(a, b *config.Config) bool {
	if len(a.Syncs) != len(b.Syncs) || a.Defaults.InventoryNamespace != b.Defaults.InventoryNamespace || a.Webhook != b.Webhook || !a.SameImages(b) {
		return false
	}
	for i := range a.Syncs {
		if !a.Syncs[i].Equal(b.Syncs[i]) {
			return false
		}
	}
	return true
}
