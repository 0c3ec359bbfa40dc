package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/tether-gitops/tether/source"
)

// The checks below are pure: each returns a message for a bad value, or "".
// Messages never repeat a credential: URLs are shown through source.Redact.

// protectedKinds are the kinds pruneProtected may name (sync's protected
// kinds).
func protectedKinds() []string {
	return []string{"Namespace", "CustomResourceDefinition", "PersistentVolumeClaim"}
}

func checkNotEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	return ""
}

// checkDNSLabel accepts names of syncs and namespaces.
func checkDNSLabel(s string) string {
	if isDNSLabel(s) {
		return ""
	}
	return fmt.Sprintf("%q is not a DNS label: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit", s)
}

func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// checkAbsPath accepts the absolute paths of secret and trust files.
func checkAbsPath(s string) string {
	if !filepath.IsAbs(s) {
		return fmt.Sprintf("%q must be an absolute path", s)
	}
	return ""
}

func checkEnvName(s string) string {
	if !isEnvName(s) {
		return fmt.Sprintf("%q is not an environment variable name (letters, digits and '_', not starting with a digit)", s)
	}
	return ""
}

func isEnvName(s string) bool {
	for i, c := range s {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// urlScheme returns the scheme of "scheme://...", or "" when s does not
// start with one.
func urlScheme(s string) string {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return ""
	}
	for i, c := range scheme {
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-')) {
			return ""
		}
	}
	return scheme
}

// scpUser returns the user of an scp-like "[user@]host:path" and whether s
// is one: a host free of '@', ':', '/' and spaces, a non-empty path, and a
// user free of '@', '/' and spaces.
func scpUser(s string) (user string, ok bool) {
	rest := s
	if at := strings.Index(s, "@"); at >= 0 {
		user, rest = s[:at], s[at+1:]
		if user == "" || strings.ContainsAny(user, "/ \t\n") {
			return "", false
		}
	}
	host, path, found := strings.Cut(rest, ":")
	if !found || host == "" || path == "" || strings.ContainsAny(host, "@/ \t\n") {
		return "", false
	}
	return user, true
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
	msg := fmt.Sprintf("%q is not a protected kind: want Namespace, CustomResourceDefinition or PersistentVolumeClaim", s)
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

// repoURLKind validates a repository URL and says whether it is "http",
// "https" or "ssh". Its errors show the URL through source.Redact, and
// reject credentials in it.
func repoURLKind(raw string) (string, error) {
	shown := source.Redact(raw)
	if strings.TrimSpace(raw) == "" {
		return "", errors.New("must not be empty")
	}
	if raw != strings.TrimSpace(raw) {
		return "", fmt.Errorf("%q has leading or trailing spaces", shown)
	}
	if given := urlScheme(raw); given != "" {
		scheme := strings.ToLower(given)
		switch scheme {
		case "http", "https", "ssh":
		default:
			return "", fmt.Errorf("unsupported scheme %q in %s: use https://, http://, ssh:// or user@host:path", given, shown)
		}
		rest := raw[len(given)+len("://"):]
		authority := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			userinfo := authority[:at]
			switch {
			case scheme != "ssh":
				return "", fmt.Errorf("credentials in the URL (%s) are not allowed: put the user in auth.username and the password in a file named by auth.passwordFile (or a variable named by auth.passwordEnv)", shown)
			case strings.Contains(userinfo, ":"):
				return "", fmt.Errorf("passwords in SSH URLs (%s) are not supported: use auth.sshKeyFile", shown)
			}
		}
		u, err := url.Parse(raw)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // url.Error repeats the URL
			}
			return "", fmt.Errorf("%s is not a valid URL: %v", shown, err)
		}
		switch {
		case u.Hostname() == "":
			return "", fmt.Errorf("%s has no host", shown)
		case u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
			return "", fmt.Errorf("%s: queries and fragments are not supported", shown)
		case u.Path == "" || u.Path == "/":
			return "", fmt.Errorf("%s has no repository path", shown)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return "", fmt.Errorf("%s has a bad port %q", shown, p)
			}
		}
		return scheme, nil
	}
	if strings.Contains(raw, "://") {
		return "", fmt.Errorf("%s has a malformed scheme: use https://, http://, ssh:// or user@host:path", shown)
	}
	if user, ok := scpUser(raw); ok {
		if strings.Contains(user, ":") {
			return "", fmt.Errorf("passwords in SSH URLs (%s) are not supported: use auth.sshKeyFile", shown)
		}
		return "ssh", nil
	}
	return "", fmt.Errorf("%q is not a repository URL: want https://host/path, http://host/path, ssh://[user@]host/path or user@host:path", shown)
}

// cleanRepoPath cleans a valid repository path; "" is the root.
func cleanRepoPath(s string) string {
	if s == "" {
		return DefaultPath
	}
	return path.Clean(s)
}
