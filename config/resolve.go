package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/tether-gitops/tether/render"

	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// resolve checks what single fields cannot (required fields, fields that
// exclude each other, unique names) and applies the defaults. The result
// is meaningful only when no problem was found.
func (d *decoder) resolve(raw *rawConfig) *Config {
	switch {
	case !raw.apiVersion.set:
		d.addf(raw.line, "apiVersion", "required: set it to %q", APIVersion)
	case raw.apiVersion.v != APIVersion:
		d.addf(raw.apiVersion.line, "apiVersion", "%q is not supported: want %q", raw.apiVersion.v, APIVersion)
	}
	switch {
	case !raw.kind.set:
		d.addf(raw.line, "kind", "required: set it to %q", Kind)
	case raw.kind.v != Kind:
		d.addf(raw.kind.line, "kind", "%q is not supported: want %q", raw.kind.v, Kind)
	}

	cfg := &Config{
		Defaults: Defaults{
			Interval:           or(raw.defaults.interval, DefaultInterval),
			Timeout:            or(raw.defaults.timeout, DefaultTimeout),
			InventoryNamespace: or(raw.defaults.inventoryNamespace, DefaultInventoryNamespace),
			Prune:              or(raw.defaults.prune, false),
			DeleteBudget:       or(raw.defaults.deleteBudget, tsync.Budget{Count: tsync.DefaultDeleteBudget}),
			Drift:              or(raw.defaults.drift, DriftCorrect),
		},
		Webhook: Webhook{SecretFile: cleanFile(raw.webhook.secretFile.v)},
	}

	if raw.defaults.timeout.set {
		d.checkTimeout(raw.defaults.timeout.line, "defaults.timeout", cfg.Defaults.Timeout)
	} else if !d.timeoutAllowsRender(DefaultTimeout) {
		d.addf(raw.line, "defaults.timeout", "not set, so %s, which is not longer than a render may take (--render-cpu-limit %s; a render is killed at %s of CPU): set it to more than that", DefaultTimeout, d.lim.RenderCPULimit, render.HardCPULimit(d.lim.RenderCPULimit))
	}
	if len(raw.syncs.v) == 0 && !raw.syncs.bad {
		line := raw.syncs.line
		if !raw.syncs.set && line == 0 {
			line = raw.line
		}
		d.addf(line, "syncs", "at least one sync is required")
	}
	names := map[string]int{}
	for i, rs := range raw.syncs.v {
		if rs == nil {
			continue
		}
		p := fmt.Sprintf("syncs[%d]", i)
		if rs.name.set {
			if first, dup := names[rs.name.v]; dup {
				d.addf(rs.name.line, p+".name", "duplicate sync name %q (first at line %d)", rs.name.v, first)
			} else {
				names[rs.name.v] = rs.name.line
			}
		}
		s := d.resolveSync(rs, p, cfg)
		s.ImageUpdates = d.resolveImageUpdates(rs, p+".imageUpdates", s)
		cfg.Syncs = append(cfg.Syncs, s)
	}
	d.resolveImages(raw, cfg)
	return cfg
}

func (d *decoder) resolveSync(rs *rawSync, p string, cfg *Config) Sync {
	if !rs.name.set {
		d.addf(rs.line, p+".name", "required")
	}
	s := Sync{
		Name:              rs.name.v,
		Path:              cleanRepoPath(rs.path.v),
		Namespace:         or(rs.namespace, DefaultNamespace),
		Prune:             or(rs.prune, cfg.Defaults.Prune),
		AllowEmpty:        rs.allowEmpty.v,
		Wait:              or(rs.wait, true),
		DeleteOnRemove:    rs.deleteOnRemove.v,
		Suspend:           rs.suspend.v,
		DeleteBudget:      or(rs.deleteBudget, cfg.Defaults.DeleteBudget),
		PruneProtected:    rs.pruneProtected.v,
		Timeout:           or(rs.timeout, cfg.Defaults.Timeout),
		WebhookSecretFile: cfg.Webhook.SecretFile,
	}
	if rs.timeout.set {
		d.checkTimeout(rs.timeout.line, p+".timeout", s.Timeout)
	}
	if rs.webhook.secretFile.set {
		s.WebhookSecretFile = cleanFile(rs.webhook.secretFile.v)
	}
	d.resolveDrift(rs, p, cfg.Defaults.Drift, &s)
	if rs.source.bad {
		return s // reported when decoded
	}
	if !rs.source.set {
		d.addf(rs.line, p+".source", "required: set source.url (a git repository) or source.localPath (a folder)")
		return s
	}
	s.Source = d.resolveSource(rs.source.v, rs.source.line, p+".source", cfg)
	return s
}

func (d *decoder) resolveSource(rs *rawSource, line int, p string, cfg *Config) Source {
	s := Source{
		Interval: or(rs.interval, cfg.Defaults.Interval),
		Timeout:  or(rs.timeout, DefaultFetchTimeout),
		MaxSize:  or(rs.maxSize, DefaultMaxSize),
	}
	switch {
	case rs.url.set && rs.localPath.set:
		d.addf(rs.localPath.line, p+".localPath", "set url or localPath, not both")
		return s
	case !rs.url.set && !rs.localPath.set:
		d.addf(line, p, "set url (a git repository) or localPath (a folder)")
		return s
	case rs.localPath.set:
		s.LocalPath = rs.localPath.v
		if !filepath.IsAbs(s.LocalPath) {
			s.LocalPath = filepath.Join(filepath.Dir(d.file), s.LocalPath)
		}
		s.LocalPath = filepath.Clean(s.LocalPath)
		if rs.ref.set {
			d.addf(rs.ref.line, p+".ref", "applies to url sources only (localPath is a folder)")
		}
		if rs.auth.set {
			d.addf(rs.auth.line, p+".auth", "applies to url sources only (localPath is a folder)")
		}
		return s
	}
	s.URL = rs.url.v
	s.Ref = d.resolveRef(rs.ref, p+".ref")
	kind, err := repoURLKind(s.URL)
	if err != nil {
		return s // reported when decoded
	}
	a := rs.auth.v
	if a == nil {
		a = &rawAuth{}
	}
	authLine := rs.auth.line
	if !rs.auth.set {
		authLine = line
	}
	s.Auth = d.resolveAuth(a, s.URL, kind, authLine, p+".auth")
	return s
}

func (d *decoder) resolveRef(r opt[*rawRef], p string) source.Ref {
	if !r.set {
		return source.Ref{Branch: DefaultBranch}
	}
	ref := source.Ref{
		Branch: r.v.branch.v,
		Tag:    r.v.tag.v,
		Commit: strings.ToLower(r.v.commit.v),
		SemVer: r.v.semver.v,
	}
	var set []string
	last := 0
	for _, f := range []struct {
		name string
		v    opt[string]
	}{{"branch", r.v.branch}, {"tag", r.v.tag}, {"commit", r.v.commit}, {"semver", r.v.semver}} {
		if f.v.set {
			set = append(set, f.name)
			last = f.v.line
		}
	}
	switch len(set) {
	case 0:
		return source.Ref{Branch: DefaultBranch}
	case 1:
		return ref
	}
	d.addf(last, p, "set one of branch, tag, commit or semver, not %s", strings.Join(set, " and "))
	return ref
}

// resolveAuth checks that the credentials fit the URL's kind, as the
// source package will when it fetches, but with lines and field paths.
func (d *decoder) resolveAuth(a *rawAuth, url, kind string, line int, p string) source.Auth {
	auth := source.Auth{
		Username:              a.username.v,
		PasswordFile:          cleanFile(a.passwordFile.v),
		PasswordEnv:           a.passwordEnv.v,
		BearerTokenFile:       cleanFile(a.bearerTokenFile.v),
		BearerTokenEnv:        a.bearerTokenEnv.v,
		CAFile:                cleanFile(a.caFile.v),
		SSHKeyFile:            cleanFile(a.sshKeyFile.v),
		SSHPassphraseFile:     cleanFile(a.sshPassphraseFile.v),
		KnownHostsFile:        cleanFile(a.knownHostsFile.v),
		InsecureIgnoreHostKey: a.insecureIgnoreHostKey.v,
		AllowInsecureHTTP:     a.allowInsecureHTTP.v,
	}
	if a.passwordFile.set && a.passwordEnv.set {
		d.addf(a.passwordEnv.line, p+".passwordEnv", "set passwordFile or passwordEnv, not both")
	}
	if a.bearerTokenFile.set && a.bearerTokenEnv.set {
		d.addf(a.bearerTokenEnv.line, p+".bearerTokenEnv", "set bearerTokenFile or bearerTokenEnv, not both")
	}
	httpOnly := []struct {
		name string
		v    opt[string]
	}{
		{"username", a.username}, {"passwordFile", a.passwordFile}, {"passwordEnv", a.passwordEnv},
		{"bearerTokenFile", a.bearerTokenFile}, {"bearerTokenEnv", a.bearerTokenEnv}, {"caFile", a.caFile},
	}
	sshOnly := []struct {
		name string
		v    opt[string]
	}{{"sshKeyFile", a.sshKeyFile}, {"sshPassphraseFile", a.sshPassphraseFile}, {"knownHostsFile", a.knownHostsFile}}

	if auth.AllowInsecureHTTP && kind != "http" {
		d.addf(a.allowInsecureHTTP.line, p+".allowInsecureHTTP", "applies to http:// URLs only")
	}
	if kind == "ssh" {
		for _, f := range httpOnly {
			if f.v.set {
				d.addf(f.v.line, p+"."+f.name, "applies to https and http URLs only, and this is an SSH URL")
			}
		}
		if !a.sshKeyFile.set {
			d.addf(line, p+".sshKeyFile", "required for an SSH URL")
		}
		switch {
		case !a.knownHostsFile.set && !auth.InsecureIgnoreHostKey:
			d.addf(line, p+".knownHostsFile", "required for an SSH URL: host keys are checked (or set insecureIgnoreHostKey: true)")
		case a.knownHostsFile.set && auth.InsecureIgnoreHostKey:
			d.addf(a.insecureIgnoreHostKey.line, p+".insecureIgnoreHostKey", "knownHostsFile is set too: choose one")
		}
		return auth
	}

	for _, f := range sshOnly {
		if f.v.set {
			d.addf(f.v.line, p+"."+f.name, "applies to SSH URLs only")
		}
	}
	if auth.InsecureIgnoreHostKey {
		d.addf(a.insecureIgnoreHostKey.line, p+".insecureIgnoreHostKey", "applies to SSH URLs only")
	}
	hasPassword := a.passwordFile.set || a.passwordEnv.set
	hasToken := a.bearerTokenFile.set || a.bearerTokenEnv.set
	switch {
	case hasPassword && hasToken:
		l := a.bearerTokenFile.line
		name := "bearerTokenFile"
		if !a.bearerTokenFile.set {
			l, name = a.bearerTokenEnv.line, "bearerTokenEnv"
		}
		d.addf(l, p+"."+name, "a password is set too: use a password or a bearer token, not both")
	case hasPassword && !a.username.set:
		l, name := a.passwordFile.line, "passwordFile"
		if !a.passwordFile.set {
			l, name = a.passwordEnv.line, "passwordEnv"
		}
		d.addf(l, p+"."+name, "needs auth.username")
	case a.username.set && !hasPassword:
		d.addf(a.username.line, p+".username", "needs passwordFile or passwordEnv")
	}
	if a.caFile.set && kind != "https" {
		d.addf(a.caFile.line, p+".caFile", "applies to https URLs only")
	}
	if kind == "http" && (hasPassword || hasToken) && !auth.AllowInsecureHTTP {
		d.addf(line, p, "%v", source.InsecureHTTPCredentials(source.Redact(url)))
	}
	return auth
}

// or is the value when it was set, else def.
func or[T any](o opt[T], def T) T {
	if o.set {
		return o.v
	}
	return def
}

// cleanFile cleans an absolute file path; "" stays "".
func cleanFile(s string) string {
	if s == "" {
		return ""
	}
	return filepath.Clean(s)
}

// timeoutAllowsRender reports whether a reconcile of timeout t leaves a
// render the CPU time it may take (see Limits.RenderCPULimit).
func (d *decoder) timeoutAllowsRender(t time.Duration) bool {
	return d.lim.RenderCPULimit <= 0 || t > render.HardCPULimit(d.lim.RenderCPULimit)
}

// checkTimeout reports a timeout set at line (path) that is not longer
// than a render may take.
func (d *decoder) checkTimeout(line int, path string, t time.Duration) {
	if d.timeoutAllowsRender(t) {
		return
	}
	hard := render.HardCPULimit(d.lim.RenderCPULimit)
	d.addf(line, path, "%s is not longer than a render may take (--render-cpu-limit %s; a render is killed at %s of CPU): every reconcile of a revision that fails by the limit would time out before its render could say so; set more than %s, or lower --render-cpu-limit", t, d.lim.RenderCPULimit, hard, hard)
}
