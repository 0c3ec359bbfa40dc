package config

import (
	"strings"
	"testing"
	"time"

	"github.com/tether-gitops/tether/images"
)

func TestExampleImages(t *testing.T) {
	cfg, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Registries) != 2 || cfg.Registries[0].DockerConfigFile != "/etc/tether/registry/.dockerconfigjson" ||
		cfg.Registries[0].NotificationSecretFile != "/etc/tether/registry/notify-token" || !cfg.Registries[1].Insecure ||
		cfg.Registries[1].Username != "robot" {
		t.Errorf("registries = %+v", cfg.Registries)
	}
	web, ok := cfg.ImagePolicy("webapp")
	if !ok || web.Policy.Kind != images.SemVer || web.Policy.Range != ">=1.0.0 <2.0.0" || web.Interval != 5*time.Minute ||
		strings.Join(web.Policy.Exclude, ",") != strings.Join(images.DefaultExclude(), ",") {
		t.Errorf("webapp = %+v %+v", web, web.Policy)
	}
	worker, _ := cfg.ImagePolicy("worker")
	if worker.Policy.Kind != images.Numerical || worker.Policy.Order != images.Asc || worker.Policy.Extract != "ts" ||
		worker.Policy.Filter == nil || len(worker.Policy.Exclude) != 5 || worker.Interval != DefaultImageInterval {
		t.Errorf("worker = %+v %+v", worker, worker.Policy)
	}
	if k, ok := worker.Policy.Key("main-abc123-1700000000"); !ok || k.Tag == "" {
		t.Error("the worker policy does not read its own tag scheme")
	}
	if got := cfg.Registry("registry.example.com").CAFile; got != "/etc/tether/registry/ca.pem" {
		t.Errorf("Registry(host).CAFile = %q", got)
	}
	if got := cfg.Registry("unknown.example.com"); got.Host != "unknown.example.com" || got.Insecure {
		t.Errorf("an unconfigured host = %+v", got)
	}
	prod, _ := cfg.Sync("webapp-prod")
	if prod.ImageUpdates.Enabled {
		t.Error("imageUpdates is on for a sync that does not set it")
	}
	again, _ := Load("example.yaml")
	if !cfg.SameImages(again) {
		t.Error("the same file loaded twice differs in its images")
	}
	again.ImagePolicies[0].Interval++
	if cfg.SameImages(again) {
		t.Error("a changed interval is not noticed")
	}
}

// A registries[] entry for docker.io applies to Docker Hub's images, which
// go-containerregistry names index.docker.io.
func TestRegistryDockerHubAlias(t *testing.T) {
	const sync = "  - name: a\n    source:\n      url: https://h/r\n"
	yaml := head + sync + "registries:\n  - host: docker.io\n    username: robot\n    passwordFile: /etc/tether/hub/password\n"
	cfg, err := Parse("tether.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Registry(RegistryHost("docker.io/library/nginx")); got.Username != "robot" {
		t.Errorf("Registry(%q) = %+v, want the docker.io entry", RegistryHost("docker.io/library/nginx"), got)
	}
	dup := head + sync + "registries:\n  - host: docker.io\n  - host: index.docker.io\n"
	if _, err := Parse("tether.yaml", []byte(dup)); err == nil || !strings.Contains(err.Error(), `duplicate registry "index.docker.io"`) {
		t.Errorf("docker.io and index.docker.io: %v", err)
	}
}

func TestImageDefaults(t *testing.T) {
	yaml := head + "  - name: a\n    source:\n      url: https://h/r\n    path: overlays/dev\n    imageUpdates: {}\n" +
		"imagePolicies:\n  - name: p\n    image: reg.example.com/app\n    semver: '>=1.0.0'\n"
	cfg, err := Parse("tether.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	want := ImageUpdates{Enabled: true, Path: "overlays/dev", AuthorName: DefaultAuthorName, AuthorEmail: DefaultAuthorEmail,
		MessageTemplate: images.DefaultMessageTemplate, RolloutTimeout: DefaultRolloutTimeout}
	if got := cfg.Syncs[0].ImageUpdates; got != want {
		t.Errorf("imageUpdates = %+v, want %+v", got, want)
	}
	if RegistryHost("reg.example.com/app") != "reg.example.com" || RegistryHost("127.0.0.1:5000/a/b") != "127.0.0.1:5000" {
		t.Error("RegistryHost")
	}
}

func TestImageProblems(t *testing.T) {
	const sync = "  - name: a\n    source:\n      url: https://h/r\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "policy fields",
			yaml: head + sync + "imagePolicies:\n" +
				"  - name: Web\n    image: reg.example.com/app:1.0\n    semver: '>=x.y'\n" +
				"  - name: b\n    image: reg.example.com/b\n    interval: 1s\n    alphabetical: up\n" +
				"  - name: c\n    image: reg.example.com/c\n" +
				"  - name: d\n    image: reg.example.com/d\n    semver: '*'\n    numerical: asc\n" +
				"  - name: e\n    image: reg.example.com/e\n    numerical: asc\n    filterTags:\n      pattern: '(?P<ts>[0-9]+'\n      extract: ts\n" +
				"  - name: f\n    image: reg.example.com/f\n    numerical: asc\n    filterTags:\n      pattern: '(?P<ts>[0-9]+)'\n      extract: tss\n    exclude: ['[x']\n" +
				"  - name: f\n    image: reg.example.com/f\n    numerical: desc\n    semverr: x\n",
			want: []string{
				`tether.yaml:8: imagePolicies[0].name: "Web" is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit`,
				`tether.yaml:9: imagePolicies[0].image: "reg.example.com/app:1.0": name the repository without a tag (the policy chooses the tag)`,
				`tether.yaml:10: imagePolicies[0].semver: ">=x.y" is not a semver range such as ">=1.2.0 <2.0.0" or "~1.2"`,
				`tether.yaml:13: imagePolicies[1].interval: 1s is below the minimum of 5s`,
				`tether.yaml:14: imagePolicies[1].alphabetical: "up" is not an order: want asc (the highest wins) or desc (the lowest wins)`,
				`tether.yaml:15: imagePolicies[2]: set one of semver (a range), alphabetical or numerical (asc or desc)`,
				`tether.yaml:20: imagePolicies[3]: set one of semver, alphabetical or numerical, not semver and numerical`,
				"tether.yaml:25: imagePolicies[4].filterTags.pattern: \"(?P<ts>[0-9]+\" is not a regular expression: error parsing regexp: missing closing ): `(?P<ts>[0-9]+`",
				`tether.yaml:32: imagePolicies[5].filterTags.extract: "tss" is not a named group of the pattern: want (?P<tss>...)`,
				`tether.yaml:33: imagePolicies[5].exclude[0]: "[x" is not a glob pattern such as *.sig`,
				`tether.yaml:34: imagePolicies[6].name: duplicate image policy name "f" (first at line 27)`,
				`tether.yaml:37: imagePolicies[6].semverr: unknown field (did you mean "semver"?)`,
			},
		},
		{
			name: "registries",
			yaml: head + sync + "registries:\n" +
				"  - host: reg.example.com/path\n" +
				"  - host: a.example.com\n    dockerConfigJSONFile: /d\n    username: u\n    passwordFile: p\n" +
				"  - host: b.example.com\n    username: u\n    insecure: true\n    caFile: /ca\n" +
				"  - host: b.example.com\n  - insecure: true\n",
			want: []string{
				`tether.yaml:8: registries[0].host: "reg.example.com/path" is not a registry host: want host or host:port, such as registry.example.com or 127.0.0.1:5000`,
				`tether.yaml:10: registries[1].dockerConfigJSONFile: set dockerConfigJSONFile or username and passwordFile, not both`,
				`tether.yaml:12: registries[1].passwordFile: must be an absolute path (the value is not shown, in case it is a secret)`,
				`tether.yaml:14: registries[2].username: needs passwordFile`,
				`tether.yaml:16: registries[2].caFile: insecure: true talks plain HTTP, where a CA has no use`,
				`tether.yaml:17: registries[3].host: duplicate registry "b.example.com" (first at line 13)`,
				`tether.yaml:18: registries[4].host: required`,
			},
		},
		{
			name: "imageUpdates",
			yaml: head + "  - name: a\n    source:\n      localPath: /srv\n    imageUpdates:\n      enabled: true\n" +
				"  - name: b\n    source:\n      url: https://h/r\n      ref:\n        tag: v1\n    imageUpdates:\n      author:\n        email: nobody\n      messageTemplate: '{{.Nope'\n      rolloutTimeout: 1s\n      pathh: x\n" +
				"  - name: c\n    source:\n      url: https://h/r\n    imageUpdates:\n      branch: 'a..b'\n      path: ../x\n",
			want: []string{
				`tether.yaml:7: syncs[0].imageUpdates: needs a git source (source.url): commits are pushed to it`,
				`tether.yaml:14: syncs[1].imageUpdates.branch: required when the sync follows a tag rather than a branch: name the branch the commits go to`,
				`tether.yaml:16: syncs[1].imageUpdates.author.email: "nobody" is not an email address`,
				`tether.yaml:17: syncs[1].imageUpdates.messageTemplate: not a usable commit message template: template: message:1: unclosed action`,
				`tether.yaml:18: syncs[1].imageUpdates.rolloutTimeout: 1s is below the minimum of 10s`,
				`tether.yaml:19: syncs[1].imageUpdates.pathh: unknown field (did you mean "path"?)`,
				`tether.yaml:24: syncs[2].imageUpdates.branch: "a..b" is not a valid git ref name`,
				`tether.yaml:25: syncs[2].imageUpdates.path: "../x" must stay inside the repository (no '..')`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("tether.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
