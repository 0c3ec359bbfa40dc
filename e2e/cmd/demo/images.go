package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/e2e/registry"
	"github.com/tether-gitops/tether/images"
)

// imagesStep shows image automation: a local registry gets tags of the
// example image, the overlay's images entry is marked, and tether picks the
// newest tag, commits it to git, applies it and follows the Deployment's
// rollout (its HPA keeps the replicas), ending with `tether images`.
func (d *demo) imagesStep(ctx context.Context, repo *gitserver.Repo, cfgPath, statusURL, logPath string) (func(), error) {
	d.step("image automation: a local registry (docker-registry) with webapp 1.1.0 and 1.2.0")
	reg, err := registry.Start(registry.Options{})
	if err != nil {
		return nil, err
	}
	for _, tag := range []string{"1.1.0", "1.2.0"} {
		if _, err := reg.Push(ctx, "", "webapp", tag); err != nil {
			reg.Close()
			return nil, err
		}
	}
	image := reg.Host + "/webapp"
	fmt.Fprintf(d.out, "pushed %s:1.1.0 and %s:1.2.0\n", image, image)

	d.step("marking the overlay's images entry and adding a policy: tether picks 1.2.0, commits and applies it")
	kust, err := os.ReadFile(filepath.Join(repo.Work, "overlays", "dev", "kustomization.yaml"))
	if err != nil {
		reg.Close()
		return nil, err
	}
	marked := strings.Replace(string(kust), "  - name: registry.example.com/webapp\n    newTag: 1.1.0\n",
		"  - name: registry.example.com/webapp\n    newName: "+image+" # tether:image webapp:name\n    newTag: 1.1.0 # tether:image webapp:tag\n", 1)
	sha, err := repo.Commit("webapp: follow the local registry", map[string]string{"overlays/dev/kustomization.yaml": marked})
	if err != nil {
		reg.Close()
		return nil, err
	}
	fmt.Fprintf(d.out, "pushed %s: overlays/dev/kustomization.yaml now says\n    newName: %s # tether:image webapp:name\n    newTag: 1.1.0 # tether:image webapp:tag\n", sha[:12], image)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		reg.Close()
		return nil, err
	}
	extra := fmt.Sprintf("registries:\n  - host: %s\n    insecure: true\nimagePolicies:\n  - name: webapp\n    image: %s\n    interval: 10s\n    semver: \">=1.0.0 <2.0.0\"\n", reg.Host, image)
	updated := strings.Replace(string(cfg), "syncs:\n", extra+"syncs:\n", 1) + "    imageUpdates:\n      author:\n        name: tether demo\n        email: demo@tether.invalid\n"
	if err := os.WriteFile(cfgPath, []byte(updated), 0o600); err != nil {
		reg.Close()
		return nil, err
	}
	fmt.Fprintln(d.out, "added a registry, the image policy webapp (semver >=1.0.0 <2.0.0) and imageUpdates to the agent's configuration (hot reload)")

	want := image + ":1.2.0"
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st, err := fetchStatus(ctx, statusURL)
		if err == nil && st.Images != nil && rolledOut(st.Images, "1.2.0") {
			break
		}
		if time.Now().After(deadline) {
			logTail, _ := os.ReadFile(logPath)
			reg.Close()
			return nil, fmt.Errorf("%s did not roll out within 4 minutes (status %+v); agent log:\n%s", want, st.Images, tailLines(string(logTail), 30))
		}
		select {
		case <-ctx.Done():
			reg.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if _, err := repo.Git("pull", "--quiet", "--ff-only", "origin", "main"); err != nil {
		reg.Close()
		return nil, err
	}
	show, err := repo.Git("show", "--format=commit %h by %an%n%n%B", "--unified=0", "HEAD")
	if err != nil {
		reg.Close()
		return nil, err
	}
	fmt.Fprintf(d.out, "tether's commit on main:\n%s\n", show)
	if err := d.kubectl(ctx, "-n", "webapp-dev", "get", "deployment/webapp", "hpa/webapp", "-o", "wide"); err != nil {
		reg.Close()
		return nil, err
	}
	if err := d.tether(ctx, "images", "--server", statusURL); err != nil {
		reg.Close()
		return nil, err
	}
	return reg.Close, nil
}

// rolledOut reports whether the webapp policy's rollout to tag succeeded.
func rolledOut(st *agent.ImagesStatus, tag string) bool {
	for _, p := range st.Policies {
		for _, s := range p.Syncs {
			if p.Name == "webapp" && s.InGit == tag && s.Rollout != nil && s.Rollout.Tag == tag && s.Rollout.Outcome == images.RolloutSucceeded {
				return true
			}
		}
	}
	return false
}

func fetchStatus(ctx context.Context, statusURL string) (*agent.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statusURL+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	st := &agent.Status{}
	return st, json.NewDecoder(resp.Body).Decode(st)
}
