package webhook

import "strings"

// NormalizeURL reduces a repository URL to "host/path" so that the
// spellings of one repository compare equal: scheme, user info, port, query,
// fragment, a trailing ".git" and trailing slashes are dropped, and the
// result is lower case. "git@github.com:Org/Repo.git",
// "ssh://git@github.com:22/org/repo" and "https://github.com/org/repo/"
// all become "github.com/org/repo".
//
// Paths are compared case-insensitively as well as hosts: the forges that
// send webhooks treat owner and repository names that way, and a false
// match costs nothing (the signature must still verify with that sync's
// secret), while a missed one drops the trigger. Ports are dropped because
// one server commonly serves SSH and HTTPS on different ports. It returns
// "" for a string that has no host and path.
func NormalizeURL(raw string) string {
	s := strings.TrimSpace(raw)
	var authority, path string
	if scheme, rest, ok := strings.Cut(s, "://"); ok && scheme != "" && !strings.ContainsAny(scheme, "/@:") {
		if i := strings.IndexAny(rest, "?#"); i >= 0 {
			rest = rest[:i]
		}
		authority, path, _ = strings.Cut(rest, "/")
		authority = hostOnly(authority)
	} else if host, p, ok := cutSCP(s); ok {
		authority, path = host, p
	} else {
		// "host/path", as some payloads and users write it.
		authority, path, _ = strings.Cut(s, "/")
		authority = hostOnly(authority)
	}
	for {
		trimmed := strings.TrimSuffix(strings.Trim(path, "/"), ".git")
		if trimmed == path {
			break
		}
		path = trimmed
	}
	if authority == "" || path == "" {
		return ""
	}
	return strings.ToLower(authority + "/" + path)
}

// cutSCP splits an scp-like "[user@]host:path" at the colon that ends the
// host; a bracketed IPv6 host ("git@[::1]:repo") keeps its colons.
func cutSCP(s string) (host, path string, ok bool) {
	hostStart := 0
	if i := strings.IndexAny(s, "@:[/"); i >= 0 && s[i] == '@' {
		hostStart = i + 1
	}
	rest := s[hostStart:]
	var colon int
	if strings.HasPrefix(rest, "[") {
		colon = strings.Index(rest, "]:") + 1
	} else {
		colon = strings.Index(rest, ":")
	}
	if colon <= 0 || strings.Contains(rest[:colon], "/") {
		return "", "", false // no host, or "host/path:x", which is not scp-like
	}
	return strings.Trim(rest[:colon], "[]"), rest[colon+1:], true
}

// hostOnly drops user info and port from a URL authority, and the brackets
// of an IPv6 address.
func hostOnly(authority string) string {
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = authority[at+1:]
	}
	if strings.HasPrefix(authority, "[") {
		if end := strings.Index(authority, "]"); end >= 0 {
			return authority[1:end]
		}
		return ""
	}
	if colon := strings.LastIndex(authority, ":"); colon >= 0 {
		authority = authority[:colon]
	}
	return authority
}
