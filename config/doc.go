// Package config reads the configuration file of the long-running agent
// (tether run): one YAML file holding one or more syncs. It parses and
// validates, purely: Parse reads nothing but its input, and Load only reads
// the file. Watching the file and restarting syncs is the caller's job;
// Sync.Equal says which syncs changed.
//
// Decoding is strict. Unknown fields (with a suggestion for a likely typo),
// duplicate keys, values of the wrong type and invalid values are all
// rejected, and every problem in the file is reported at once, as an *Error
// whose lines read
//
//	tether.yaml:14: syncs[1].source.ref.commit: "abc" is not a full 40-hex commit SHA
//	tether.yaml:9: syncs[0].prun: unknown field (did you mean "prune"?)
//
// No message repeats a credential: URLs are shown redacted, a URL that
// carries a password is rejected in favour of auth.passwordFile, and the
// value of a field that names a secret file or variable (passwordFile,
// passwordEnv, bearerTokenFile, bearerTokenEnv, sshKeyFile,
// sshPassphraseFile, webhook secretFile) is never shown, in case the
// secret itself was pasted there. Repository URLs are checked by
// source.ValidateURL, the rules the source itself applies.
//
// # Example
//
//	apiVersion: tether.dev/v1alpha1
//	kind: AgentConfig
//	defaults:
//	  interval: 1m
//	  prune: true
//	webhook:
//	  secretFile: /etc/tether/webhook/secret
//	syncs:
//	  - name: webapp-dev
//	    source:
//	      url: https://git.example.com/org/app.git
//	      ref:
//	        branch: main
//	      auth:
//	        username: git
//	        passwordFile: /etc/tether/git/password
//	    path: overlays/dev
//	    namespace: webapp-dev
//
// example.yaml in this folder sets every field, with comments.
//
// # Fields
//
// Durations are Go durations ("30s", "5m", "1h30m"); a bare number is
// rejected. Sizes are bytes or Kubernetes quantities ("256Mi", "1G"). File
// fields are absolute paths (typically a mounted Secret); secrets are read
// from them on every fetch, so a rotated Secret takes effect without a
// restart.
//
// Top level:
//
//	apiVersion     string    required  exactly "tether.dev/v1alpha1"
//	kind           string    required  exactly "AgentConfig"
//	defaults       mapping             settings every sync inherits unless it sets its own
//	webhook        mapping             webhook settings shared by all syncs
//	syncs          list      required  at least one sync; names unique
//
// defaults:
//
//	interval            duration  1m             poll interval of every source (>= 5s)
//	timeout             duration  5m             time limit of one reconcile, health wait included (>= 10s, > --render-cpu-limit + 5s)
//	inventoryNamespace  string    tether-system  namespace of the inventory ConfigMaps (a DNS label)
//	prune               bool      false          delete what a sync applied before and is gone now
//	deleteBudget        string    "50"           deletes per reconcile: a count, "10%" or "unlimited"
//
// webhook:
//
//	secretFile     path      none      file holding the HMAC-SHA256 secret of every sync that sets none;
//	                                   a sync without any secret cannot be triggered by webhook
//
// syncs[]:
//
//	name            string    required             the sync's name: a DNS label (<= 63 of [a-z0-9-],
//	                                               no leading or trailing '-'); names its inventory and labels its objects
//	source          mapping   required             where the manifests come from (below)
//	path            string    "."                  folder in the repository to render; relative, no ".."
//	namespace       string    default              namespace for namespaced objects that set none (a DNS label)
//	prune           bool      defaults.prune       delete what the sync applied before and is gone now
//	allowEmpty      bool      false                let a revision that renders nothing prune everything
//	deleteBudget    string    defaults.deleteBudget  deletes per reconcile: a count, "10%" or "unlimited"
//	pruneProtected  list      []                   protected kinds this sync may prune: Namespace,
//	                                               CustomResourceDefinition, PersistentVolumeClaim
//	wait            bool      true                 wait for every object to be healthy after applying
//	timeout         duration  defaults.timeout     time limit of one reconcile (>= 10s, > --render-cpu-limit + 5s)
//	deleteOnRemove  bool      false                when the sync is removed from the file, delete its
//	                                               objects (true) or leave them in place (false)
//	webhook.secretFile  path  webhook.secretFile   the sync's own webhook secret
//	suspend         bool      false                keep the sync configured but do not reconcile it
//
// syncs[].source (exactly one of url and localPath):
//
//	url        string    none            git repository: https://host/path, http://host/path,
//	                                     ssh://[user@]host[:port]/path or user@host:path; no credentials
//	localPath  string    none            a folder on disk, for development; relative to the file's folder
//	ref        mapping   branch: main    git only; at most one of:
//	  branch   string                    follow the tip of a branch
//	  tag      string                    follow a tag
//	  commit   string                    pin a full 40-hex commit SHA
//	  semver   string                    follow the highest tag in a range, e.g. ">=1.2.0 <2.0.0"
//	interval   duration  defaults.interval  poll interval (>= 5s)
//	timeout    duration  60s             time limit of one fetch (>= 5s)
//	maxSize    size      64Mi            largest checkout accepted, and largest single file
//	                                     (at most 4Gi; a fetch holds up to ~3 × maxSize in memory)
//	auth       mapping   none            git only; credentials and trust (below)
//
// syncs[].source.auth (all optional; files are absolute paths, *Env fields
// name environment variables):
//
//	username               string  HTTP basic auth user; needs passwordFile or passwordEnv
//	passwordFile           path    file holding the HTTP basic auth password
//	passwordEnv            string  variable holding the password (not both with passwordFile)
//	bearerTokenFile        path    file holding a token sent as "Authorization: Bearer"
//	bearerTokenEnv         string  variable holding the token (not both with bearerTokenFile;
//	                               not together with a password)
//	caFile                 path    PEM bundle trusted for https besides the system roots
//	sshKeyFile             path    SSH private key; required for SSH URLs
//	sshPassphraseFile      path    file holding the key's passphrase
//	knownHostsFile         path    accepted host keys (OpenSSH known_hosts); required for SSH URLs
//	                               unless insecureIgnoreHostKey is set
//	insecureIgnoreHostKey  bool    accept any SSH host key (insecure; not with knownHostsFile)
//
// Image automation (images.go): the top-level registries and
// imagePolicies lists and syncs[].imageUpdates. Every field is in the
// README's table and in example.yaml; their checks follow the same rules
// (file:line, did-you-mean, secret file paths never shown).
//
// The HTTP fields (username, password*, bearerToken*, caFile) apply to
// https and http URLs only, caFile to https only, and the SSH fields to SSH
// URLs only; setting one for the other kind of URL is an error.
package config
