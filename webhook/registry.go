package webhook

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// Registry notifications: a registry tells tether that a tag was pushed,
// and tether scans the repository at once instead of at its next poll.

// RegistryPath receives registry push notifications: the distribution
// registry's envelopes (application/vnd.docker.distribution.events.v1+json),
// Harbor's and Docker Hub's push payloads.
const RegistryPath = "/hooks/registry"

// RegistryTarget is a registry whose notifications are accepted.
type RegistryTarget struct {
	// Host is the registry host; a notification's repositories are taken
	// as Host/repository.
	Host string
	// Secret is the shared secret the registry sends as
	// "Authorization: Bearer <secret>" (or the bare secret, as Harbor's
	// auth header does); Docker Hub, which sends no headers, puts it in
	// the URL (?token=<secret>), accepted for Docker Hub's payload only.
	// A target without one is never accepted.
	Secret []byte
}

// registrySecretHelp is what a registry notification without a valid
// secret is told.
const registrySecretHelp = "invalid or missing secret (Authorization: Bearer <secret>; Docker Hub: ?" + RegistryTokenParam + "=<secret>)"

// RegistryTokenParam is the URL query parameter that carries the shared
// secret for senders that cannot set a header (Docker Hub).
const RegistryTokenParam = "token"

// SetRegistryTargets replaces the registries whose notifications are
// accepted; safe while serving. The secrets are copied.
func (r *Receiver) SetRegistryTargets(targets []RegistryTarget) {
	out := make([]RegistryTarget, 0, len(targets))
	for _, t := range targets {
		if t.Host == "" || len(t.Secret) == 0 {
			continue
		}
		out = append(out, RegistryTarget{Host: t.Host, Secret: slices.Clone(t.Secret)})
	}
	r.registries.Store(&out)
}

// registryNotification holds the fields of the three payloads that
// matter; each sender fills its own.
type registryNotification struct {
	// distribution: {"events": [{"action": "push", "target": {...}}]}
	Events []struct {
		Action string `json:"action"`
		Target struct {
			MediaType  string `json:"mediaType"`
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"target"`
	} `json:"events"`
	// Harbor: {"type": "PUSH_ARTIFACT", "event_data": {"repository": {"repo_full_name": "library/app"}}}
	Type      string `json:"type"`
	EventData struct {
		Repository struct {
			FullName string `json:"repo_full_name"`
		} `json:"repository"`
	} `json:"event_data"`
	// Docker Hub: {"push_data": {...}, "repository": {"repo_name": "user/app"}}
	PushData   *json.RawMessage `json:"push_data"`
	Repository struct {
		RepoName string `json:"repo_name"`
	} `json:"repository"`
}

// dockerHub reports whether the notification is Docker Hub's payload and
// nothing else.
func (n *registryNotification) dockerHub() bool {
	return n.PushData != nil && len(n.Events) == 0 && n.Type == ""
}

// pushedRepositories lists the repositories a notification reports pushes
// to, each once. Pulls, deletes and blob uploads are not pushes of a tag.
func (n *registryNotification) pushedRepositories() []string {
	var out []string
	seen := map[string]bool{}
	add := func(repo string) {
		repo = strings.Trim(repo, "/")
		if repo != "" && !seen[repo] {
			seen[repo] = true
			out = append(out, repo)
		}
	}
	for _, e := range n.Events {
		if e.Action == "push" && (e.Target.Tag != "" || strings.Contains(e.Target.MediaType, "manifest")) {
			add(e.Target.Repository)
		}
	}
	if strings.EqualFold(n.Type, "PUSH_ARTIFACT") {
		add(n.EventData.Repository.FullName)
	}
	if n.PushData != nil {
		add(n.Repository.RepoName)
	}
	return out
}

// registry judges a registry notification: the shared secret first (in
// constant time against every registry's), then the payload. A
// notification naming repositories no policy follows is answered 202.
//
// Docker Hub sends no headers: its secret comes in the URL's token
// parameter, taken only when there is no Authorization header and the
// body is a Docker Hub payload (the other senders can set a header, and a
// secret in a URL ends up in proxies' logs). tether never logs the URL.
func (r *Receiver) registry(req *http.Request, body []byte, _ []byte, _ bool) outcome {
	o := outcome{event: "registry"}
	header := req.Header.Get("Authorization")
	target := r.registryFor(header)
	var n registryNotification
	parsed := json.Unmarshal(body, &n)
	if target == nil && header == "" && parsed == nil && n.dockerHub() {
		target = r.registryFor(req.URL.Query().Get(RegistryTokenParam))
	}
	if target == nil {
		o.status, o.result, o.clientError = http.StatusUnauthorized, "invalid registry secret", registrySecretHelp
		return o
	}
	if parsed != nil {
		o.status, o.result, o.clientError = http.StatusBadRequest, "bad JSON", "invalid JSON body"
		return o
	}
	o.images = true
	o.status, o.result = http.StatusAccepted, "no matching image policy"
	for _, repo := range n.pushedRepositories() {
		o.candidates = append(o.candidates, target.Host+"/"+repo)
		o.triggered = append(o.triggered, r.triggerImages(target.Host, repo)...)
	}
	slices.Sort(o.triggered)
	o.triggered = slices.Compact(o.triggered)
	if len(o.triggered) > 0 {
		o.status, o.result = http.StatusOK, "scans triggered"
	}
	return o
}

// registryFor returns the registry whose secret the Authorization header
// carries, comparing with every secret in constant time.
func (r *Receiver) registryFor(header string) *RegistryTarget {
	secret := strings.TrimSpace(header)
	if v, ok := strings.CutPrefix(secret, "Bearer "); ok {
		secret = strings.TrimSpace(v)
	}
	if secret == "" {
		return nil
	}
	// Digests of equal length are compared, so the time taken does not
	// tell the secret's length either.
	given := sha256.Sum256([]byte(secret))
	var found *RegistryTarget
	if p := r.registries.Load(); p != nil {
		for i := range *p {
			t := &(*p)[i]
			want := sha256.Sum256(t.Secret)
			if subtle.ConstantTimeCompare(given[:], want[:]) == 1 && found == nil {
				found = t
			}
		}
	}
	return found
}
