//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-gitops/tether/e2e/registry"
	"github.com/tether-gitops/tether/images"
)

// The scanner against Debian's docker-registry, without a control plane:
// plain HTTP, TLS with htpasswd (right and wrong password, no CA), an
// unknown repository, and 100,000 tags.
func TestRegistryScanner(t *testing.T) {
	ctx := context.Background()
	const password = "scan-Pa55word"
	secure := startRegistry(t, registry.Options{TLS: true, Users: map[string]string{"robot": password}})
	plain := startRegistry(t, registry.Options{})
	push(t, secure, "robot", "team/app", "1.0.0")
	digest := push(t, secure, "robot", "team/app", "1.1.0")
	push(t, secure, "robot", "team/app", "2.0.0-rc.1", "sha256-"+strings.TrimPrefix(digest, "sha256:")+".sig")
	manyDigest := push(t, plain, "", "many", "0")
	tags := make([]string, 100_000)
	for i := range tags {
		tags[i] = strconv.Itoa(i + 1)
	}
	if err := plain.TagDirectly("many", manyDigest, tags); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, good, bad := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	for path, content := range map[string]string{ca: string(secure.CACertPEM()), good: password + "\n", bad: "nope-" + password} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	policy := &images.Policy{Name: "app", Image: secure.Host + "/team/app", Kind: images.SemVer, Range: ">=1.0.0 <2.0.0", Exclude: images.DefaultExclude()}
	if err := policy.Compile(); err != nil {
		t.Fatal(err)
	}
	s := images.NewScanner(nil)
	reg := images.Registry{Host: secure.Host, CAFile: ca, Username: "robot", PasswordFile: good}
	res, err := s.Scan(ctx, policy, reg, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Tags != 4 || strings.Join(res.Best, ",") != "1.1.0,1.0.0" {
		t.Errorf("TLS + htpasswd: %+v", res)
	}
	d, err := s.Digest(ctx, policy.Image, reg, "1.1.0", nil)
	if err != nil || d != digest {
		t.Errorf("digest of 1.1.0 = %s, %v; want %s", d, err, digest)
	}
	reg.PasswordFile = bad
	if _, err := s.Scan(ctx, policy, reg, 3, nil); err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), password) {
		t.Errorf("wrong password: %v", err)
	}
	reg.PasswordFile, reg.CAFile = good, ""
	if _, err := s.Scan(ctx, policy, reg, 3, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v", err)
	}

	unknown := &images.Policy{Name: "u", Image: plain.Host + "/no/such", Kind: images.SemVer, Range: "*"}
	_ = unknown.Compile()
	if _, err := s.Scan(ctx, unknown, images.Registry{Host: plain.Host, Insecure: true}, 1, nil); err == nil || !strings.Contains(err.Error(), "no such repository") {
		t.Errorf("unknown repository: %v", err)
	}
	many := &images.Policy{Name: "many", Image: plain.Host + "/many", Kind: images.Numerical, Order: images.Asc}
	_ = many.Compile()
	res, err = s.Scan(ctx, many, images.Registry{Host: plain.Host, Insecure: true}, 3, nil)
	if err != nil || res.Tags != 100_001 || res.Best[0] != "100000" {
		t.Fatalf("100,000 tags: %+v %v", res, err)
	}
	t.Logf("100,001 tags in %d requests", res.Requests)
}
