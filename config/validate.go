package config

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// The checks below are pure: each returns a message for a bad value, or "".
// Messages never repeat a credential: URLs are shown through source.Redact.

// protectedKinds are the kinds pruneProtected may name: the Kind names of
// sync.ProtectedKinds.
func protectedKinds() []string {
	var out []string
	for _, gk := range tsync.ProtectedKinds() {
		out = append(out, gk.Kind)
	}
	return out
}

func checkNotEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	return ""
}

// checkDNSLabel accepts names of syncs and namespaces.
func checkDNSLabel(s string) string {
	if len(validation.IsDNS1123Label(s)) == 0 {
		return ""
	}
	return fmt.Sprintf("%q is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit", s)
}

// checkAbsPath accepts the absolute paths of trust files (caFile,
// knownHostsFile).
func checkAbsPath(s string) string {
	if !filepath.IsAbs(s) {
		return fmt.Sprintf("%q must be an absolute path", s)
	}
	return ""
}

// checkSecretPath accepts the absolute paths of secret files. It never
// shows the value: a secret pasted into the field by mistake would reach
// logs and status.
func checkSecretPath(s string) string {
	if !filepath.IsAbs(s) {
		return "must be an absolute path (the value is not shown, in case it is a secret)"
	}
	return ""
}

// checkEnvName accepts the names of variables that hold secrets. It never
// shows the value: a secret pasted into the field by mistake would reach
// logs and status.
func checkEnvName(s string) string {
	if !source.IsEnvName(s) {
		return "the value is not a valid environment variable name: use letters, digits and '_', not starting with a digit (the value is not shown, in case it is a secret)"
	}
	return ""
}

// checkRepoPath accepts a folder inside the repository.
func checkRepoPath(s string) string {
	switch {
	case strings.HasPrefix(s, "/") || filepath.IsAbs(s):
		return fmt.Sprintf("%q must be relative to the repository root (no leading '/')", s)
	case strings.Contains(s, `\`):
		return fmt.Sprintf("%q: separate folders with '/'", s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return fmt.Sprintf("%q must stay inside the repository (no '..')", s)
		}
	}
	return ""
}

func checkCommit(s string) string {
	if len(s) != 40 || strings.Trim(strings.ToLower(s), "0123456789abcdef") != "" {
		return fmt.Sprintf("%q is not a full 40-hex commit SHA", s)
	}
	return ""
}

func checkSemver(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	if _, err := semver.NewConstraint(s); err != nil {
		return fmt.Sprintf("%q is not a semver range such as \">=1.2.0 <2.0.0\" or \"~1.2\"", s)
	}
	return ""
}

func checkBranch(s string) string { return checkRefName(source.Ref{Branch: s}, s) }
func checkTag(s string) string    { return checkRefName(source.Ref{Tag: s}, s) }

// checkRefName uses the source package's rules for branch and tag names.
func checkRefName(r source.Ref, s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	if err := r.Validate(); err != nil {
		return fmt.Sprintf("%q is not a valid git ref name", s)
	}
	return ""
}

func checkProtectedKind(s string) string {
	kinds := protectedKinds()
	for _, k := range kinds {
		if s == k {
			return ""
		}
	}
	msg := fmt.Sprintf("%q is not a protected kind: want one of %s", s, strings.Join(kinds, ", "))
	if sug := suggest(s, kinds); sug != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sug)
	}
	return msg
}

func checkRepoURL(s string) string {
	_, err := repoURLKind(s)
	if err != nil {
		return err.Error()
	}
	return ""
}

// repoURLKind validates a repository URL with source.ValidateURL (the
// rules the source applies when it fetches) and says whether it is
// "http", "https" or "ssh". It also refuses what a configuration file must
// not hold: spaces around the URL and credentials in it. Its errors show
// the URL through source.Redact.
func repoURLKind(raw string) (string, error) {
	shown := source.Redact(raw)
	if strings.TrimSpace(raw) == "" {
		return "", errors.New("must not be empty")
	}
	if raw != strings.TrimSpace(raw) {
		return "", fmt.Errorf("%q has leading or trailing spaces", shown)
	}
	info, err := source.ValidateURL(raw)
	if err != nil {
		return "", err
	}
	if info.Credentials {
		return "", source.CredentialsInURL(shown)
	}
	return info.Scheme, nil
}

// cleanRepoPath cleans a valid repository path; "" is the root.
func cleanRepoPath(s string) string {
	if s == "" {
		return DefaultPath
	}
	return path.Clean(s)
}
