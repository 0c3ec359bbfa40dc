package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// head is the start of most test files; the first sync starts on line 4.
const head = "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n"

func TestExampleParses(t *testing.T) {
	cfg, err := Load("example.yaml")
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	wantDefaults := Defaults{
		Interval:           time.Minute,
		Timeout:            5 * time.Minute,
		InventoryNamespace: "tether-system",
		Prune:              true,
		DeleteBudget:       tsync.Budget{Count: 50},
		Drift:              DriftCorrect,
	}
	if cfg.Defaults != wantDefaults {
		t.Errorf("defaults = %+v, want %+v", cfg.Defaults, wantDefaults)
	}
	if cfg.Webhook.SecretFile != "/etc/tether/webhook/secret" {
		t.Errorf("webhook.secretFile = %q", cfg.Webhook.SecretFile)
	}
	var names []string
	for _, s := range cfg.Syncs {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "webapp-dev,webapp-prod,monitoring,crds,scratch"; got != want {
		t.Errorf("syncs = %s, want %s", got, want)
	}

	dev, _ := cfg.Sync("webapp-dev")
	wantDev := Sync{
		Name: "webapp-dev",
		Source: Source{
			URL:      "https://git.example.com/org/app.git",
			Ref:      source.Ref{Branch: "main"},
			Interval: 30 * time.Second,
			Timeout:  2 * time.Minute,
			MaxSize:  64 << 20,
			Auth: source.Auth{
				Username:     "git",
				PasswordFile: "/etc/tether/git/password",
				CAFile:       "/etc/tether/git/ca.pem",
			},
		},
		Path:              "overlays/dev",
		Namespace:         "webapp-dev",
		Prune:             true,
		Wait:              true,
		DeleteBudget:      tsync.Budget{Percent: 10},
		PruneProtected:    []string{"Namespace"},
		Timeout:           5 * time.Minute,
		WebhookSecretFile: "/etc/tether/webhook/webapp",
		Drift:             DriftWarn,
		IgnoreDifferences: []tsync.IgnoreRule{{Group: "apps", Kind: "Deployment", Name: "webapp", Paths: []string{
			"spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt",
			"spec.template.spec.containers[name=web].resources",
		}}},
		ImageUpdates: ImageUpdates{Enabled: true, Branch: "image-updates", Path: ".", AuthorName: "tether", AuthorEmail: "tether@example.com",
			MessageTemplate: "Update images ({{.Sync}})\n\n{{range .Changes}}- {{.Image}}: {{.Old}} → {{.New}} ({{.File}}:{{.Line}})\n{{end}}\n", RolloutTimeout: 10 * time.Minute},
	}
	if !dev.Equal(wantDev) {
		t.Errorf("webapp-dev =\n%+v\nwant\n%+v", dev, wantDev)
	}

	prod, _ := cfg.Sync("webapp-prod")
	if prod.Source.Ref != (source.Ref{SemVer: ">=1.2.0 <2.0.0"}) || prod.Source.Auth.KnownHostsFile != "/etc/tether/ssh/known_hosts" ||
		prod.Source.Interval != time.Minute || prod.DeleteBudget != (tsync.Budget{Count: 5}) ||
		prod.WebhookSecretFile != "/etc/tether/webhook/secret" || !prod.Prune || prod.Path != "overlays/prod" {
		t.Errorf("webapp-prod = %+v", prod)
	}
	mon, _ := cfg.Sync("monitoring")
	if mon.Prune || mon.Wait || mon.Source.Ref.Tag != "v1.2.3" || mon.Source.Auth.BearerTokenEnv != "GIT_TOKEN" || mon.Path != "." {
		t.Errorf("monitoring = %+v", mon)
	}
	crds, _ := cfg.Sync("crds")
	if crds.Source.Ref.Commit != "0123456789abcdef0123456789abcdef01234567" || !crds.DeleteOnRemove {
		t.Errorf("crds = %+v", crds)
	}
	scratch, _ := cfg.Sync("scratch")
	if scratch.Source.LocalPath != "/srv/manifests" || scratch.Source.IsGit() || !scratch.DeleteBudget.Unlimited {
		t.Errorf("scratch = %+v", scratch)
	}
}

// TestProblems checks the exact message of every rule: each case's file
// must be rejected with exactly these lines.
func TestProblems(t *testing.T) {
	sync := func(lines ...string) string { return head + strings.Join(lines, "\n") + "\n" }
	const url = "      url: https://git.example.com/org/app.git" // for sync()
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown field with suggestion",
			yaml: sync("  - name: a", "    source:", url, "    prun: true"),
			want: []string{`tether.yaml:7: syncs[0].prun: unknown field (did you mean "prune"?)`},
		},
		{
			name: "unknown field without suggestion",
			yaml: sync("  - name: a", "    source:", url, "      ref:", "        sha: abc"),
			want: []string{`tether.yaml:8: syncs[0].source.ref.sha: unknown field (want one of: branch, tag, commit, semver)`},
		},
		{
			name: "unknown field differing in case",
			yaml: "apiversion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n  - name: a\n    source:\n" + url + "\n",
			want: []string{
				`tether.yaml:1: apiversion: unknown field (did you mean "apiVersion"?)`,
				`tether.yaml:1: apiVersion: required: set it to "tether.dev/v1alpha1"`,
			},
		},
		{
			name: "duplicate key",
			yaml: sync("  - name: a", "    source:", url, "    prune: true", "    prune: false"),
			want: []string{`tether.yaml:8: syncs[0].prune: duplicate key (first at line 7)`},
		},
		{
			name: "wrong apiVersion and kind",
			yaml: "apiVersion: tether.dev/v1\nkind: Config\nsyncs:\n  - name: a\n    source:\n" + url + "\n",
			want: []string{
				`tether.yaml:1: apiVersion: "tether.dev/v1" is not supported: want "tether.dev/v1alpha1"`,
				`tether.yaml:2: kind: "Config" is not supported: want "AgentConfig"`,
			},
		},
		{
			name: "no syncs",
			yaml: "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs: []\n",
			want: []string{`tether.yaml:3: syncs: at least one sync is required`},
		},
		{
			name: "syncs missing",
			yaml: "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\n",
			want: []string{`tether.yaml:1: syncs: at least one sync is required`},
		},
		{
			name: "name required, source required",
			yaml: sync("  - namespace: x"),
			want: []string{
				`tether.yaml:4: syncs[0].name: required`,
				`tether.yaml:4: syncs[0].source: required: set source.url (a git repository) or source.localPath (a folder)`,
			},
		},
		{
			name: "name not a DNS label",
			yaml: sync("  - name: Web_App", "    source:", url),
			want: []string{`tether.yaml:4: syncs[0].name: "Web_App" is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit`},
		},
		{
			name: "name too long",
			yaml: sync("  - name: "+strings.Repeat("a", 64), "    source:", url),
			want: []string{`tether.yaml:4: syncs[0].name: "` + strings.Repeat("a", 64) + `" is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit`},
		},
		{
			name: "duplicate sync names",
			yaml: sync("  - name: a", "    source:", url, "  - name: a", "    source:", url),
			want: []string{`tether.yaml:7: syncs[1].name: duplicate sync name "a" (first at line 4)`},
		},
		{
			name: "url and localPath",
			yaml: sync("  - name: a", "    source:", url, "      localPath: /srv"),
			want: []string{`tether.yaml:7: syncs[0].source.localPath: set url or localPath, not both`},
		},
		{
			name: "neither url nor localPath",
			yaml: sync("  - name: a", "    source:", "      interval: 1m"),
			want: []string{`tether.yaml:5: syncs[0].source: set url (a git repository) or localPath (a folder)`},
		},
		{
			name: "unsupported scheme",
			yaml: sync("  - name: a", "    source:", "      url: ftp://host/repo"),
			want: []string{`tether.yaml:6: syncs[0].source.url: unsupported URL scheme "ftp" in ftp://host/repo: use https://, http:// or ssh:// (or user@host:path)`},
		},
		{
			name: "not a URL",
			yaml: sync("  - name: a", "    source:", "      url: just-a-name"),
			want: []string{`tether.yaml:6: syncs[0].source.url: malformed repository URL just-a-name: want https://host/path, http://host/path, ssh://[user@]host[:port]/path or [user@]host:path`},
		},
		{
			name: "URL without path",
			yaml: sync("  - name: a", "    source:", "      url: https://git.example.com/"),
			want: []string{`tether.yaml:6: syncs[0].source.url: malformed repository URL https://git.example.com/: no repository path`},
		},
		{
			name: "URL with a query",
			yaml: sync("  - name: a", "    source:", "      url: https://git.example.com/r?x=1"),
			want: []string{`tether.yaml:6: syncs[0].source.url: malformed repository URL https://git.example.com/r?x=1: queries and fragments are not supported`},
		},
		{
			name: "URL with a bad port",
			yaml: sync("  - name: a", "    source:", "      url: https://git.example.com:99999/r"),
			want: []string{`tether.yaml:6: syncs[0].source.url: malformed repository URL https://git.example.com:99999/r: bad port "99999"`},
		},
		{
			name: "password in https URL",
			yaml: sync("  - name: a", "    source:", "      url: https://bob:hunter2secret@git.example.com/org/app.git"),
			want: []string{`tether.yaml:6: syncs[0].source.url: credentials in the URL (https://***@git.example.com/org/app.git) are not allowed: give the user as auth.username (--username) and the password or token in a file or environment variable (auth.passwordFile, auth.passwordEnv, auth.bearerTokenFile, auth.bearerTokenEnv; --password-file, --password-env, --bearer-token-file, --bearer-token-env)`},
		},
		{
			name: "token as user in https URL",
			yaml: sync("  - name: a", "    source:", "      url: https://ghp_tokentokentoken@github.com/org/app"),
			want: []string{`tether.yaml:6: syncs[0].source.url: credentials in the URL (https://***@github.com/org/app) are not allowed: give the user as auth.username (--username) and the password or token in a file or environment variable (auth.passwordFile, auth.passwordEnv, auth.bearerTokenFile, auth.bearerTokenEnv; --password-file, --password-env, --bearer-token-file, --bearer-token-env)`},
		},
		{
			name: "password in ssh URL",
			yaml: sync("  - name: a", "    source:", "      url: ssh://git:hunter2secret@git.example.com/org/app.git"),
			want: []string{`tether.yaml:6: syncs[0].source.url: repository URL ssh://***@git.example.com/org/app.git: passwords in ssh URLs are not supported: authenticate with an SSH key`},
		},
		{
			name: "password in scp-like URL",
			yaml: sync("  - name: a", "    source:", "      url: git:hunter2secret@git.example.com:org/app.git"),
			want: []string{`tether.yaml:6: syncs[0].source.url: repository URL ***@git.example.com:org/app.git: passwords in ssh URLs are not supported: authenticate with an SSH key`},
		},
		{
			name: "two ref kinds",
			yaml: sync("  - name: a", "    source:", url, "      ref:", "        branch: main", "        tag: v1"),
			want: []string{`tether.yaml:9: syncs[0].source.ref: set one of branch, tag, commit or semver, not branch and tag`},
		},
		{
			name: "short commit",
			yaml: sync("  - name: a", "    source:", url, "      ref:", "        commit: abc"),
			want: []string{`tether.yaml:8: syncs[0].source.ref.commit: "abc" is not a full 40-hex commit SHA`},
		},
		{
			name: "commit not hex",
			yaml: sync("  - name: a", "    source:", url, "      ref:", "        commit: "+strings.Repeat("g", 40)),
			want: []string{`tether.yaml:8: syncs[0].source.ref.commit: "` + strings.Repeat("g", 40) + `" is not a full 40-hex commit SHA`},
		},
		{
			name: "bad semver range",
			yaml: sync("  - name: a", "    source:", url, "      ref:", `        semver: ">=x.y"`),
			want: []string{`tether.yaml:8: syncs[0].source.ref.semver: ">=x.y" is not a semver range such as ">=1.2.0 <2.0.0" or "~1.2"`},
		},
		{
			name: "bad branch name",
			yaml: sync("  - name: a", "    source:", url, "      ref:", "        branch: a..b"),
			want: []string{`tether.yaml:8: syncs[0].source.ref.branch: "a..b" is not a valid git ref name`},
		},
		{
			name: "interval and timeouts below their minimum",
			yaml: "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\ndefaults:\n  interval: 1s\n  timeout: 5s\nsyncs:\n" +
				"  - name: a\n    timeout: 9s\n    source:\n" + url + "\n      interval: 4s\n      timeout: 1s\n",
			want: []string{
				`tether.yaml:4: defaults.interval: 1s is below the minimum of 5s`,
				`tether.yaml:5: defaults.timeout: 5s is below the minimum of 10s`,
				`tether.yaml:8: syncs[0].timeout: 9s is below the minimum of 10s`,
				`tether.yaml:11: syncs[0].source.interval: 4s is below the minimum of 5s`,
				`tether.yaml:12: syncs[0].source.timeout: 1s is below the minimum of 5s`,
			},
		},
		{
			name: "duration without unit, and not a duration",
			yaml: sync("  - name: a", "    timeout: 300", "    source:", url, "      interval: soon"),
			want: []string{
				`tether.yaml:5: syncs[0].timeout: want a duration such as 30s or 5m, got number 300 (give a unit)`,
				`tether.yaml:8: syncs[0].source.interval: "soon" is not a duration: want a number and a unit, such as 30s, 5m or 1h30m`,
			},
		},
		{
			name: "type errors",
			yaml: sync("  - name: a", "    prune: \"true\"", "    wait: yes", "    namespace: [a]", "    source:", url, "      maxSize: lots"),
			want: []string{
				`tether.yaml:5: syncs[0].prune: want true or false, got "true"`,
				`tether.yaml:6: syncs[0].wait: want true or false, got "yes"`,
				`tether.yaml:7: syncs[0].namespace: want a string, got a list`,
				`tether.yaml:10: syncs[0].source.maxSize: "lots" is not a size: want bytes or a quantity such as 512Ki, 256Mi or 1Gi`,
			},
		},
		{
			// F12: a size that would overflow the source's transfer
			// allowance (it used to saturate at MaxInt64) is refused.
			name: "maxSize over the maximum",
			yaml: sync("  - name: a", "    source:", url, "      maxSize: 8Ei",
				"  - name: b", "    source:", url, "      maxSize: 9223372036854775807",
				"  - name: c", "    source:", url, "      maxSize: 4.5Gi",
				"  - name: d", "    source:", url, "      maxSize: 100E"),
			want: []string{
				`tether.yaml:7: syncs[0].source.maxSize: 8Ei is over the maximum of 4Gi`,
				`tether.yaml:11: syncs[1].source.maxSize: 9223372036854775807 is over the maximum of 4Gi`,
				`tether.yaml:15: syncs[2].source.maxSize: 4.5Gi is over the maximum of 4Gi`,
				`tether.yaml:19: syncs[3].source.maxSize: 100E is over the maximum of 4Gi`,
			},
		},
		{
			name: "boolean where a string belongs",
			yaml: sync("  - name: a", "    source:", url, "      ref:", "        branch: true"),
			want: []string{`tether.yaml:8: syncs[0].source.ref.branch: want a string, got boolean true (quote it)`},
		},
		{
			name: "syncs not a list, sync not a mapping",
			yaml: "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n  name: a\n",
			want: []string{`tether.yaml:4: syncs: want a list, got a mapping`},
		},
		{
			name: "source not a mapping, credentials not shown",
			yaml: sync("  - name: a", "    source: https://bob:hunter2@git.example.com/x", "  - name: b", "    source:", "      localPath: https://bob:hunter2@git.example.com/x", "    namespace: https://bob:hunter2@git.example.com/x"),
			want: []string{
				`tether.yaml:5: syncs[0].source: want a mapping, got "https://***@git.example.com/x"`,
				`tether.yaml:9: syncs[1].namespace: "https://***@git.example.com/x" is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit`,
			},
		},
		{
			name: "sync not a mapping",
			yaml: sync("  - webapp"),
			want: []string{`tether.yaml:4: syncs[0]: want a mapping, got "webapp"`},
		},
		{
			name: "delete budget",
			yaml: sync("  - name: a", "    deleteBudget: 0", "    source:", url, "  - name: b", "    deleteBudget: 150%", "    source:", url),
			want: []string{
				`tether.yaml:5: syncs[0].deleteBudget: delete budget "0": want a positive count, a percentage like 10%, or unlimited`,
				`tether.yaml:9: syncs[1].deleteBudget: delete budget "150%": a percentage must be 1% to 100%`,
			},
		},
		{
			name: "path outside the repository",
			yaml: sync("  - name: a", "    path: /abs", "    source:", url, "  - name: b", "    path: overlays/../../x", "    source:", url),
			want: []string{
				`tether.yaml:5: syncs[0].path: "/abs" must be relative to the repository root (no leading '/')`,
				`tether.yaml:9: syncs[1].path: "overlays/../../x" must stay inside the repository (no '..')`,
			},
		},
		{
			name: "pruneProtected",
			yaml: sync("  - name: a", "    pruneProtected: [Namespaces, Secret, Namespace, Namespace]", "    source:", url),
			want: []string{
				`tether.yaml:5: syncs[0].pruneProtected[0]: "Namespaces" is not a protected kind: want one of Namespace, CustomResourceDefinition, PersistentVolumeClaim (did you mean "Namespace"?)`,
				`tether.yaml:5: syncs[0].pruneProtected[1]: "Secret" is not a protected kind: want one of Namespace, CustomResourceDefinition, PersistentVolumeClaim`,
				`tether.yaml:5: syncs[0].pruneProtected[3]: "Namespace" is listed twice`,
			},
		},
		{
			name: "ssh URL needs a key and known hosts",
			yaml: sync("  - name: a", "    source:", "      url: git@github.com:org/app.git"),
			want: []string{
				`tether.yaml:5: syncs[0].source.auth.sshKeyFile: required for an SSH URL`,
				`tether.yaml:5: syncs[0].source.auth.knownHostsFile: required for an SSH URL: host keys are checked (or set insecureIgnoreHostKey: true)`,
			},
		},
		{
			name: "ssh URL with insecureIgnoreHostKey needs no known hosts",
			yaml: sync("  - name: a", "    source:", "      url: ssh://git@github.com/org/app.git", "      auth:",
				"        sshKeyFile: /k", "        insecureIgnoreHostKey: true", "        username: git"),
			want: []string{`tether.yaml:10: syncs[0].source.auth.username: applies to https and http URLs only, and this is an SSH URL`},
		},
		{
			name: "ssh URL with known hosts and insecureIgnoreHostKey",
			yaml: sync("  - name: a", "    source:", "      url: ssh://git@github.com/org/app.git", "      auth:",
				"        sshKeyFile: /k", "        knownHostsFile: /kh", "        insecureIgnoreHostKey: true"),
			want: []string{`tether.yaml:10: syncs[0].source.auth.insecureIgnoreHostKey: knownHostsFile is set too: choose one`},
		},
		{
			name: "auth files must be absolute",
			yaml: sync("  - name: a", "    source:", url, "      auth:", "        username: git",
				"        passwordFile: secrets/password", "        caFile: ./ca.pem"),
			want: []string{
				`tether.yaml:9: syncs[0].source.auth.passwordFile: must be an absolute path (the value is not shown, in case it is a secret)`,
				`tether.yaml:10: syncs[0].source.auth.caFile: "./ca.pem" must be an absolute path`,
			},
		},
		{
			name: "drift policy",
			yaml: sync("  - name: a", "    source:", url, "    drift: warm", "  - name: b", "    source:", url, "    drift: 1"),
			want: []string{
				`tether.yaml:7: syncs[0].drift: "warm" is not a drift policy: want one of correct, warn, ignore (did you mean "warn"?)`,
				`tether.yaml:11: syncs[1].drift: "1" is not a drift policy: want one of correct, warn, ignore`,
			},
		},
		{
			name: "ignoreDifferences",
			yaml: sync("  - name: a", "    source:", url, "    ignoreDifferences:", "      - group: apps", "      - kind: Deployment", "        paths: [spec..replicas]", "        nmae: x"),
			want: []string{
				`tether.yaml:8: syncs[0].ignoreDifferences[0].kind: required`,
				`tether.yaml:8: syncs[0].ignoreDifferences[0].paths: required: at least one field path`,
				`tether.yaml:10: syncs[0].ignoreDifferences[1].paths[0]: "spec..replicas" is not a field path: write it as drift reports fields, e.g. spec.replicas or spec.template.spec.containers[name=app].image`,
				`tether.yaml:11: syncs[0].ignoreDifferences[1].nmae: unknown field (did you mean "name"?)`,
			},
		},
		{
			name: "allowInsecureHTTP on an https URL",
			yaml: sync("  - name: a", "    source:", url, "      auth:", "        allowInsecureHTTP: true"),
			want: []string{`tether.yaml:8: syncs[0].source.auth.allowInsecureHTTP: applies to http:// URLs only`},
		},
		{
			name: "https auth combinations",
			yaml: sync("  - name: a", "    source:", "      url: http://git.example.com/org/app", "      auth:",
				"        passwordFile: /p", "        passwordEnv: GIT_PASSWORD", "        bearerTokenEnv: 1TOKEN",
				"        caFile: /ca", "        sshKeyFile: /k"),
			want: []string{
				`tether.yaml:7: syncs[0].source.auth: refusing to send a password or token over plain http (http://git.example.com/org/app), where anyone on the path can read it: use https, or set auth.allowInsecureHTTP: true (--allow-insecure-http) for a server on a network you trust`,
				`tether.yaml:9: syncs[0].source.auth.passwordEnv: set passwordFile or passwordEnv, not both`,
				`tether.yaml:10: syncs[0].source.auth.bearerTokenEnv: the value is not a valid environment variable name: use letters, digits and '_', not starting with a digit (the value is not shown, in case it is a secret)`,
				`tether.yaml:10: syncs[0].source.auth.bearerTokenEnv: a password is set too: use a password or a bearer token, not both`,
				`tether.yaml:11: syncs[0].source.auth.caFile: applies to https URLs only`,
				`tether.yaml:12: syncs[0].source.auth.sshKeyFile: applies to SSH URLs only`,
			},
		},
		{
			name: "password without username, username without password",
			yaml: sync("  - name: a", "    source:", url, "      auth:", "        passwordFile: /p",
				"  - name: b", "    source:", url, "      auth:", "        username: git"),
			want: []string{
				`tether.yaml:8: syncs[0].source.auth.passwordFile: needs auth.username`,
				`tether.yaml:13: syncs[1].source.auth.username: needs passwordFile or passwordEnv`,
			},
		},
		{
			name: "ref and auth with a local path",
			yaml: sync("  - name: a", "    source:", "      localPath: /srv", "      ref:", "        branch: main", "      auth:", "        username: git"),
			want: []string{
				`tether.yaml:7: syncs[0].source.ref: applies to url sources only (localPath is a folder)`,
				`tether.yaml:9: syncs[0].source.auth: applies to url sources only (localPath is a folder)`,
			},
		},
		{
			name: "webhook secret files",
			yaml: "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nwebhook:\n  secretFile: secret\nsyncs:\n  - name: a\n    webhook:\n      secretFile: s\n    source:\n" + url + "\n",
			want: []string{
				`tether.yaml:4: webhook.secretFile: must be an absolute path (the value is not shown, in case it is a secret)`,
				`tether.yaml:8: syncs[0].webhook.secretFile: must be an absolute path (the value is not shown, in case it is a secret)`,
			},
		},
		{
			name: "namespaces",
			yaml: "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\ndefaults:\n  inventoryNamespace: Tether\nsyncs:\n  - name: a\n    namespace: my_ns\n    source:\n" + url + "\n",
			want: []string{
				`tether.yaml:4: defaults.inventoryNamespace: "Tether" is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit`,
				`tether.yaml:7: syncs[0].namespace: "my_ns" is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit`,
			},
		},
		{
			name: "several problems at once, in line order",
			yaml: "kind: AgentConfig\napiVersion: v1\nsyncs:\n" +
				"  - name: a\n    source:\n      url: ftp://x/y\n    prun: true\n" +
				"  - name: a\n    source:\n" + url + "\n      ref:\n        commit: abc\n",
			want: []string{
				`tether.yaml:2: apiVersion: "v1" is not supported: want "tether.dev/v1alpha1"`,
				`tether.yaml:6: syncs[0].source.url: unsupported URL scheme "ftp" in ftp://x/y: use https://, http:// or ssh:// (or user@host:path)`,
				`tether.yaml:7: syncs[0].prun: unknown field (did you mean "prune"?)`,
				`tether.yaml:8: syncs[1].name: duplicate sync name "a" (first at line 4)`,
				`tether.yaml:12: syncs[1].source.ref.commit: "abc" is not a full 40-hex commit SHA`,
			},
		},
		{
			name: "merge keys",
			yaml: sync("  - &base", "    name: a", "    source:", url, "  - <<: *base", "    name: b"),
			want: []string{
				`tether.yaml:8: syncs[1].<<: merge keys (<<) are not supported: set the fields here, or use defaults`,
				`tether.yaml:8: syncs[1].source: required: set source.url (a git repository) or source.localPath (a folder)`,
			},
		},
		{
			name: "invalid YAML",
			yaml: "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n  - name: a\n    source:\n\turl: x\n",
			want: []string{`tether.yaml:6: invalid YAML: found character that cannot start any token`},
		},
		{
			name: "empty file",
			yaml: "# nothing\n",
			want: []string{`tether.yaml: empty configuration: want apiVersion, kind and syncs`},
		},
		{
			name: "two documents",
			yaml: head + "  - name: a\n    source:\n" + url + "\n---\n" + head,
			want: []string{`tether.yaml:7: more than one YAML document: put every sync in the syncs list of one document`},
		},
		{
			name: "not a mapping",
			yaml: "- a\n",
			want: []string{`tether.yaml:1: want a mapping (apiVersion, kind, syncs, ...), got a list`},
		},
		{
			name: "self-referencing alias",
			yaml: sync("  - &s", "    name: a", "    source: *s"),
			want: []string{
				`tether.yaml:5: syncs[0].source.name: unknown field (want one of: url, ref, localPath, interval, timeout, maxSize, auth)`,
				`tether.yaml:6: syncs[0].source.source: unknown field (want one of: url, ref, localPath, interval, timeout, maxSize, auth)`,
				`tether.yaml:6: syncs[0].source: set url (a git repository) or localPath (a folder)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("tether.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			for _, p := range cerr.Problems {
				if p.File != "tether.yaml" {
					t.Errorf("problem %v: file %q", p, p.File)
				}
			}
		})
	}
}

// TestNoCredentialInErrors checks that the password of a URL reaches no
// message, whatever else is wrong with the URL.
func TestNoCredentialInErrors(t *testing.T) {
	for _, u := range []string{
		"https://bob:hunter2secret@git.example.com/org/app.git",
		"https://bob:hunter2secret@git.example.com",
		"http://bob:hunter2secret@[::1/x",
		"https://hunter2secret@git.example.com/x?y",
		"ssh://git:hunter2secret@host/x",
		"git:hunter2secret@host:x",
		"ftp://bob:hunter2secret@host/x",
	} {
		yaml := head + "  - name: a\n    source:\n      url: " + u + "\n"
		_, err := Parse("tether.yaml", []byte(yaml))
		if err == nil {
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// F10: a secret pasted by mistake into a field that names a file or a
// variable is never repeated in an error.
func TestNoSecretInFieldErrors(t *testing.T) {
	const secret = "ghp_Pasted0Secret-Value"
	for _, tc := range []struct{ field, url string }{
		{"passwordEnv", "https://h/r"},
		{"bearerTokenEnv", "https://h/r"},
		{"passwordFile", "https://h/r"},
		{"bearerTokenFile", "https://h/r"},
		{"sshKeyFile", "ssh://git@h/r"},
		{"sshPassphraseFile", "ssh://git@h/r"},
	} {
		yaml := head + "  - name: a\n    source:\n      url: " + tc.url + "\n      auth:\n        " + tc.field + ": " + secret + "\n"
		_, err := Parse("tether.yaml", []byte(yaml))
		if err == nil || !strings.Contains(err.Error(), "auth."+tc.field+": ") {
			t.Errorf("%s: %v, want a problem with the field", tc.field, err)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Pasted0Secret") {
			t.Errorf("%s: the error repeats the value: %v", tc.field, err)
		}
	}
	yaml := "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nwebhook:\n  secretFile: " + secret + "\nsyncs:\n  - name: a\n    source:\n      url: https://h/r\n"
	if _, err := Parse("tether.yaml", []byte(yaml)); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("webhook.secretFile: %v", err)
	}
}

func TestDefaultsInheritance(t *testing.T) {
	yaml := `apiVersion: tether.dev/v1alpha1
kind: AgentConfig
syncs:
  - name: own
    source:
      url: https://git.example.com/org/app
      interval: 10s
    prune: false
    timeout: 1m
    deleteBudget: 3
    webhook:
      secretFile: /own
  - name: inherits
    source:
      url: https://git.example.com/org/app
defaults:
  interval: 2m
  timeout: 3m
  prune: true
  deleteBudget: 20%
  inventoryNamespace: gitops
webhook:
  secretFile: /etc/shared/../secret
`
	cfg, err := Parse("tether.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	own, inherits := cfg.Syncs[0], cfg.Syncs[1]
	tests := []struct {
		what      string
		got, want any
	}{
		{"own interval", own.Source.Interval, 10 * time.Second},
		{"own prune", own.Prune, false},
		{"own timeout", own.Timeout, time.Minute},
		{"own budget", own.DeleteBudget, tsync.Budget{Count: 3}},
		{"own secret", own.WebhookSecretFile, "/own"},
		{"inherited interval", inherits.Source.Interval, 2 * time.Minute},
		{"inherited prune", inherits.Prune, true},
		{"inherited timeout", inherits.Timeout, 3 * time.Minute},
		{"inherited budget", inherits.DeleteBudget, tsync.Budget{Percent: 20}},
		{"inherited secret", inherits.WebhookSecretFile, "/etc/secret"},
		{"built-in path", inherits.Path, "."},
		{"built-in namespace", inherits.Namespace, "default"},
		{"built-in wait", inherits.Wait, true},
		{"built-in ref", inherits.Source.Ref, source.Ref{Branch: "main"}},
		{"built-in fetch timeout", inherits.Source.Timeout, source.DefaultTimeout},
		{"built-in max size", inherits.Source.MaxSize, int64(source.DefaultMaxSize)},
		{"inventory namespace", cfg.Defaults.InventoryNamespace, "gitops"},
		{"sync options inventory namespace", inherits.SyncOptions(cfg.Defaults.InventoryNamespace).InventoryNamespace, "gitops"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

func TestBuiltInDefaults(t *testing.T) {
	cfg, err := Parse("/etc/tether/tether.yaml", []byte(head+"  - name: a\n    source:\n      localPath: manifests/dev\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Sync{
		Name: "a",
		Source: Source{
			LocalPath: "/etc/tether/manifests/dev", // relative to the file's folder
			Interval:  DefaultInterval,
			Timeout:   DefaultFetchTimeout,
			MaxSize:   DefaultMaxSize,
		},
		Path:         ".",
		Namespace:    "default",
		Wait:         true,
		DeleteBudget: tsync.Budget{Count: tsync.DefaultDeleteBudget},
		Timeout:      DefaultTimeout,
		Drift:        DriftCorrect,
	}
	if !cfg.Syncs[0].Equal(want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg.Syncs[0], want)
	}
	wantDefaults := Defaults{Interval: time.Minute, Timeout: 5 * time.Minute, InventoryNamespace: "tether-system", DeleteBudget: tsync.Budget{Count: 50}, Drift: DriftCorrect}
	if cfg.Defaults != wantDefaults {
		t.Errorf("defaults = %+v, want %+v", cfg.Defaults, wantDefaults)
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		field, value string
		get          func(Sync) any
		want         any
	}{
		{"maxSize", "1Gi", func(s Sync) any { return s.Source.MaxSize }, int64(1 << 30)},
		{"maxSize", "1000", func(s Sync) any { return s.Source.MaxSize }, int64(1000)},
		{"maxSize", "1.5k", func(s Sync) any { return s.Source.MaxSize }, int64(1500)},
		{"maxSize", "4Gi", func(s Sync) any { return s.Source.MaxSize }, int64(4 << 30)},
		{"commit", strings.Repeat("AB", 20), func(s Sync) any { return s.Source.Ref.Commit }, strings.Repeat("ab", 20)},
		{"tag", "1.10", func(s Sync) any { return s.Source.Ref.Tag }, "1.10"},
		{"semver", `"~1.2"`, func(s Sync) any { return s.Source.Ref.SemVer }, "~1.2"},
		{"branch", "release/v2", func(s Sync) any { return s.Source.Ref.Branch }, "release/v2"},
	}
	for _, tt := range tests {
		var body string
		switch tt.field {
		case "maxSize":
			body = "      maxSize: " + tt.value + "\n"
		default:
			body = "      ref:\n        " + tt.field + ": " + tt.value + "\n"
		}
		yaml := head + "  - name: a\n    source:\n      url: https://h/r\n" + body
		cfg, err := Parse("tether.yaml", []byte(yaml))
		if err != nil {
			t.Errorf("%s: %s: %v", tt.field, tt.value, err)
			continue
		}
		if got := tt.get(cfg.Syncs[0]); got != tt.want {
			t.Errorf("%s: %s: got %v, want %v", tt.field, tt.value, got, tt.want)
		}
	}
}

func TestAcceptedURLs(t *testing.T) {
	for _, tt := range []struct {
		url, kind string
	}{
		{"https://github.com/org/repo.git", "https"},
		{"HTTPS://github.com/org/repo", "https"},
		{"http://gitea.local:3000/org/repo", "http"},
		{"ssh://git@github.com/org/repo.git", "ssh"},
		{"ssh://git@[::1]:2222/org/repo.git", "ssh"},
		{"git@github.com:org/repo.git", "ssh"},
		{"github.com:org/repo.git", "ssh"},
	} {
		kind, err := repoURLKind(tt.url)
		if err != nil || kind != tt.kind {
			t.Errorf("repoURLKind(%q) = %q, %v; want %q", tt.url, kind, err, tt.kind)
		}
	}
}

func TestEqual(t *testing.T) {
	cfg, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := cfg.Syncs[0]
	again, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !base.Equal(again.Syncs[0]) {
		t.Error("the same sync loaded twice is not Equal")
	}
	nilVsEmpty := base
	nilVsEmpty.PruneProtected = nil
	empty := base
	empty.PruneProtected = []string{}
	if !nilVsEmpty.Equal(empty) {
		t.Error("nil and empty pruneProtected differ")
	}

	// Changing any single setting, at any depth, must make them differ:
	// this fails when a field is added to Sync but not to Equal.
	// Walk a copy, checking Equal after each single change.
	var check func(v reflect.Value, root *Sync, path string)
	check = func(v reflect.Value, root *Sync, path string) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			p := path + "." + v.Type().Field(i).Name
			if f.Kind() == reflect.Struct {
				check(f, root, p)
				continue
			}
			old := reflect.New(f.Type()).Elem()
			old.Set(f)
			switch f.Kind() {
			case reflect.String:
				f.SetString(f.String() + "x")
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Int, reflect.Int64:
				f.SetInt(f.Int() + 1)
			case reflect.Slice:
				el := reflect.New(f.Type().Elem()).Elem()
				if el.Kind() == reflect.String {
					el.SetString("x")
				}
				f.Set(reflect.Append(reflect.AppendSlice(reflect.MakeSlice(f.Type(), 0, f.Len()+1), f), el))
			default:
				t.Fatalf("%s: kind %s not covered by this test", p, f.Kind())
			}
			if root.Equal(base) || base.Equal(*root) {
				t.Errorf("changing %s leaves the syncs Equal", p)
			}
			f.Set(old)
			if !root.Equal(base) {
				t.Fatalf("%s: restoring the field did not restore equality", p)
			}
		}
	}
	mutable := base
	mutable.PruneProtected = append([]string(nil), base.PruneProtected...)
	check(reflect.ValueOf(&mutable).Elem(), &mutable, "Sync")
}

func TestSyncOptions(t *testing.T) {
	s := Sync{
		Name: "a", Namespace: "ns", Prune: true, AllowEmpty: true, Wait: true,
		DeleteBudget: tsync.Budget{Percent: 10}, PruneProtected: []string{"Namespace"}, Timeout: time.Minute,
		Suspend: true, DeleteOnRemove: true,
	}
	got := s.SyncOptions("inv")
	want := tsync.Options{
		Name: "a", Namespace: "ns", InventoryNamespace: "inv", Prune: true, AllowEmpty: true,
		DeleteBudget: tsync.Budget{Percent: 10}, PruneProtected: []string{"Namespace"}, Wait: true, Timeout: time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SyncOptions = %+v, want %+v", got, want)
	}
	got.PruneProtected[0] = "changed"
	if s.PruneProtected[0] != "Namespace" {
		t.Error("SyncOptions shares PruneProtected with the Sync")
	}
}

func TestSourceOptions(t *testing.T) {
	src := Source{
		URL: "https://h/r", Ref: source.Ref{Tag: "v1"}, Timeout: time.Minute, MaxSize: 10,
		Auth: source.Auth{Username: "u", PasswordFile: "/p"},
	}
	g := src.GitOptions("/work")
	if g.URL != src.URL || g.Ref != src.Ref || g.Dir != "/work" || g.Auth != src.Auth || g.Timeout != time.Minute || g.MaxSize != 10 {
		t.Errorf("GitOptions = %+v", g)
	}
	l := Source{LocalPath: "/srv", MaxSize: 5}.LocalOptions("/work")
	if l.Path != "/srv" || l.Dir != "/work" || l.MaxSize != 5 {
		t.Errorf("LocalOptions = %+v", l)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(head+"#"+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	if err == nil || !strings.Contains(err.Error(), big+": larger than") {
		t.Errorf("big file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(head+"  - name: A\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":4: syncs[0].name: ") {
		t.Errorf("bad file: %v, want a problem naming %s:4", err, bad)
	}
}

// TestLoadRefusesFIFO: a FIFO (or a folder) as the configuration path is
// refused at once instead of blocking until someone writes to it, which
// would also block the agent's shutdown.
func TestLoadRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "tether.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO: %v, want 'not a regular file'", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: %v, want 'not a regular file'", err)
	}
	// A symlink to a regular file (a mounted ConfigMap's ..data) is fine.
	real := filepath.Join(dir, "real.yaml")
	if err := os.WriteFile(real, []byte(head+"  - name: a\n    source:\n      localPath: /srv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(link); err != nil {
		t.Errorf("symlink to a file: %v", err)
	}
}

func TestTooManyProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString(head)
	for i := 0; i < 150; i++ {
		b.WriteString("  - name: A\n    source:\n      localPath: /x\n")
	}
	_, err := Parse("tether.yaml", []byte(b.String()))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v", err)
	}
	if n := len(cerr.Problems); n != maxProblems+1 {
		t.Errorf("%d problems, want %d", n, maxProblems+1)
	}
	if last := cerr.Problems[len(cerr.Problems)-1].String(); last != "tether.yaml: 199 more problems not shown" {
		t.Errorf("last problem = %q", last)
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\n")
	b.WriteString("x0: &x0 {name: a, source: {localPath: /x}}\n")
	b.WriteString("syncs: &l0 [*x0, *x0, *x0, *x0, *x0, *x0, *x0, *x0, *x0, *x0]\n")
	_, err := Parse("tether.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("accepted")
	}
	// The alias expands, the ten syncs share a name, and x0 is unknown:
	// reported, not hung on.
	if !strings.Contains(err.Error(), `tether.yaml:3: x0: unknown field`) || !strings.Contains(err.Error(), `duplicate sync name "a"`) {
		t.Errorf("err = %v", err)
	}
}

func TestSuggest(t *testing.T) {
	fields := []string{"name", "source", "path", "namespace", "prune", "allowEmpty", "deleteBudget", "pruneProtected", "wait", "timeout"}
	tests := []struct{ in, want string }{
		{"prun", "prune"},
		{"prunee", "prune"},
		{"Prune", "prune"},
		{"allowempty", "allowEmpty"},
		{"delete_budget", "deleteBudget"},
		{"nmae", "name"},
		{"waits", "wait"},
		{"x", ""},
		{"interval", ""},
		{"completelydifferent", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, fields); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestInsecureHTTPOptIn: a password over plain http is accepted once the
// sync says so explicitly, and carried to the source's options.
func TestInsecureHTTPOptIn(t *testing.T) {
	cfg, err := Parse("tether.yaml", []byte(head+`  - name: a
    source:
      url: http://git.lan/org/app
      auth:
        username: git
        passwordFile: /p
        allowInsecureHTTP: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Syncs[0].Source.Auth; !a.AllowInsecureHTTP || a.Username != "git" {
		t.Errorf("auth = %+v", a)
	}
}

func TestEnvNames(t *testing.T) {
	envs := []struct {
		in string
		ok bool
	}{
		{"GIT_TOKEN", true}, {"_x1", true}, {"a", true}, {"", false}, {"1A", false}, {"A-B", false}, {"A B", false},
	}
	for _, tt := range envs {
		if got := source.IsEnvName(tt.in); got != tt.ok {
			t.Errorf("IsEnvName(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
}
