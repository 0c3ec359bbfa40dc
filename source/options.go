package source

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults for GitOptions and LocalOptions.
const (
	// DefaultTimeout bounds one Fetch.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxSize caps the bytes of file content in one checkout, and
	// of any one object in a fetched pack. 64 MiB is what the renderer
	// reads at most by default (its MaxTotalSize), and it keeps a fetch
	// within a 1 GiB pod: go-git holds each object of a pack whole in
	// memory while it indexes the pack (a delta with its base and its
	// result), so a fetch can use about three times MaxSize plus go-git's
	// 96 MiB delta-base cache.
	DefaultMaxSize = 64 << 20
	// DefaultMaxFiles caps the entries in one checkout: files, symlinks,
	// directories and submodules.
	DefaultMaxFiles = 100_000
)

// MaxSizeLimit is the largest MaxSize accepted: a fetch may hold about
// three times MaxSize in memory while go-git indexes the pack (see
// DefaultMaxSize), and the transfer allowance is computed from it.
const MaxSizeLimit = 4 << 30

// maxRefAdvertisement caps the size of a ref listing; a remote that
// advertises more is refused rather than buffered. Its refs are decoded
// into maps that take several times the listing's size; 16 MiB is about
// 200,000 refs of 80 bytes.
const maxRefAdvertisement = 16 << 20

// maxErrorBody caps the part of an HTTP error answer that is read (go-git
// puts it in its error message).
const maxErrorBody = 64 << 10

// GitOptions configure a Git source.
type GitOptions struct {
	// URL of the repository: https://host/path, http://host/path,
	// ssh://[user@]host[:port]/path or scp-like [user@]host:path. Credentials
	// in an http(s) URL ("https://user:pass@host/...") are used as basic
	// auth and redacted everywhere; prefer Auth's files.
	URL string
	// Ref is the branch, tag, commit, semver range or ref name to follow.
	Ref Ref
	// Dir is the work root this source owns: Dir/current is a symlink to
	// the published checkout, checkouts live in Dir/checkouts and scratch
	// space in Dir/tmp. It is created if missing.
	Dir string
	// Auth holds credentials and trust settings.
	Auth Auth
	// Timeout bounds each Fetch (ref listing, transfer and checkout);
	// default DefaultTimeout.
	Timeout time.Duration
	// MaxSize caps the bytes of file content in a checkout (symlinks count
	// their target's length) and of any one object in a fetched pack;
	// default DefaultMaxSize, at most MaxSizeLimit. The transfer itself is
	// cut off at MaxSize plus a quarter plus 1 MiB (packs also hold commits
	// and trees), and before go-git reads a pack it is checked not to
	// inflate to more than four times MaxSize plus 64 MiB in all. A fetch
	// holds up to about three times MaxSize in memory (see DefaultMaxSize).
	MaxSize int64
	// MaxFiles caps the entries in a checkout: files, symlinks,
	// directories and submodules each count one; default DefaultMaxFiles.
	// A fetched pack may hold at most twice MaxFiles plus 1024 objects.
	MaxFiles int
	// KeepCheckouts is how many checkouts stay on disk, the current one
	// included; default 2. A reader (a render) that got the path of an
	// older one can keep reading it while KeepCheckouts-1 newer ones are
	// published: raise it when several syncs read one source.
	KeepCheckouts int
	// Getenv reads the environment variables named in Auth and the proxy
	// variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY); nil means an empty
	// environment.
	Getenv func(string) string
	// Logger receives the source's logs; nil discards them. Nothing logged
	// holds a credential.
	Logger *slog.Logger
}

// Auth holds credentials and trust settings for a Git source. Secrets are
// read from files (a mounted Kubernetes Secret) or environment variables
// on every Fetch, so rotation needs no restart. A trailing newline in a
// file is ignored.
type Auth struct {
	// Username for HTTP basic auth (with PasswordFile or PasswordEnv).
	Username string
	// PasswordFile or PasswordEnv (a variable name) hold the basic auth
	// password; set at most one.
	PasswordFile, PasswordEnv string
	// BearerTokenFile or BearerTokenEnv hold a token sent as
	// "Authorization: Bearer <token>"; set at most one.
	BearerTokenFile, BearerTokenEnv string
	// CAFile is a PEM bundle trusted for HTTPS in addition to the system
	// roots.
	CAFile string

	// SSHKeyFile is the private key for ssh:// and scp-like URLs.
	SSHKeyFile string
	// SSHPassphraseFile holds the key's passphrase, if it has one.
	SSHPassphraseFile string
	// KnownHostsFile lists the accepted host keys (OpenSSH known_hosts
	// format). It is required for SSH unless InsecureIgnoreHostKey is set.
	KnownHostsFile string
	// InsecureIgnoreHostKey accepts any SSH host key. Every fetch logs a
	// warning while it is set.
	InsecureIgnoreHostKey bool
	// AllowInsecureHTTP allows sending a password or token to an http://
	// (not https://) URL, where anyone on the path can read it. Without
	// it, credentials with an http:// URL are refused.
	AllowInsecureHTTP bool
}

// CredentialsInURL is the error for an http(s) URL that carries a user
// name, password or token: refused by the CLI, the configuration and the
// source alike, because a URL is logged, shown in status and kept in
// process listings. shown is the URL through Redact.
func CredentialsInURL(shown string) error {
	return fmt.Errorf("credentials in the URL (%s) are not allowed: give the user as auth.username (--username) and the password or token in a file or environment variable (auth.passwordFile, auth.passwordEnv, auth.bearerTokenFile, auth.bearerTokenEnv; --password-file, --password-env, --bearer-token-file, --bearer-token-env)", shown)
}

// InsecureHTTPCredentials is the error for credentials configured for a
// plain http:// URL without AllowInsecureHTTP.
func InsecureHTTPCredentials(shown string) error {
	return fmt.Errorf("refusing to send a password or token over plain http (%s), where anyone on the path can read it: use https, or set auth.allowInsecureHTTP: true (--allow-insecure-http) for a server on a network you trust", shown)
}

// endpoint is a parsed, validated repository URL.
type endpoint struct {
	scheme string // "http", "https" or "ssh"
	host   string // host name or IP, without brackets
	port   int    // 0: the scheme's default
	path   string
	user   string // ssh user; http(s): the URL's userinfo user, if any
	pass   string // http(s): the URL's userinfo password, if any
	// plain is the URL without userinfo (http) or without password (ssh):
	// what go-git is given.
	plain string
	// display is Redact(URL): what errors and logs show.
	display string
}

var (
	schemeRE  = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)
	scpLikeRE = regexp.MustCompile(`^(?:([^@/\s]+)@)?([^@:/\s]+):(.+)$`)
)

// URLInfo describes a repository URL that ValidateURL accepted.
type URLInfo struct {
	// Scheme is "https", "http" or "ssh" (an scp-like URL is "ssh").
	Scheme string
	// Credentials reports that an http(s) URL carries a user name or a
	// password ("https://user:pass@host/..." or "https://token@host/...").
	Credentials bool
}

// ValidateURL checks a repository URL as NewGit does, without contacting
// anything: https://host/path, http://host/path, ssh://[user@]host[:port]/path
// or scp-like [user@]host:path; no query or fragment, a port in range and
// no password in an SSH URL. Its errors show the URL through Redact.
func ValidateURL(raw string) (URLInfo, error) {
	ep, err := parseURL(raw)
	if err != nil {
		return URLInfo{}, err
	}
	return URLInfo{Scheme: ep.scheme, Credentials: ep.scheme != "ssh" && (ep.user != "" || ep.pass != "")}, nil
}

// IsEnvName reports whether s can name an environment variable: letters,
// digits and '_', not starting with a digit.
func IsEnvName(s string) bool {
	for i, c := range s {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// parseURL validates a repository URL. Its errors show the URL redacted.
func parseURL(raw string) (endpoint, error) {
	display := Redact(raw)
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return endpoint{}, errors.New("no repository URL given")
	}
	if m := schemeRE.FindStringSubmatch(raw); m != nil {
		scheme := strings.ToLower(m[1])
		switch scheme {
		case "http", "https", "ssh":
		default:
			return endpoint{}, fmt.Errorf("unsupported URL scheme %q in %s: use https://, http:// or ssh:// (or user@host:path)", m[1], display)
		}
		u, err := url.Parse(raw)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // url.Error repeats the URL, credentials included
			}
			return endpoint{}, fmt.Errorf("malformed repository URL %s: %v", display, err)
		}
		if u.Hostname() == "" {
			return endpoint{}, fmt.Errorf("malformed repository URL %s: no host", display)
		}
		if u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			return endpoint{}, fmt.Errorf("malformed repository URL %s: queries and fragments are not supported", display)
		}
		port := 0
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return endpoint{}, fmt.Errorf("malformed repository URL %s: bad port %q", display, p)
			}
			port = n
		}
		if u.Path == "" || u.Path == "/" {
			return endpoint{}, fmt.Errorf("malformed repository URL %s: no repository path", display)
		}
		ep := endpoint{scheme: scheme, host: u.Hostname(), port: port, path: u.Path, display: display}
		if u.User != nil {
			ep.user = u.User.Username()
			ep.pass, _ = u.User.Password()
		}
		if scheme == "ssh" && ep.pass != "" {
			return endpoint{}, fmt.Errorf("repository URL %s: passwords in ssh URLs are not supported: authenticate with an SSH key", display)
		}
		clean := *u
		clean.User = nil
		if scheme == "ssh" && ep.user != "" {
			clean.User = url.User(ep.user)
		}
		ep.plain = clean.String()
		return ep, nil
	}
	if m := scpLikeRE.FindStringSubmatch(raw); m != nil {
		if strings.Contains(m[1], ":") {
			return endpoint{}, fmt.Errorf("repository URL %s: passwords in ssh URLs are not supported: authenticate with an SSH key", display)
		}
		return endpoint{scheme: "ssh", host: m[2], user: m[1], path: m[3], plain: raw, display: display}, nil
	}
	if strings.Contains(raw, "://") {
		return endpoint{}, fmt.Errorf("malformed repository URL %s: bad scheme", display)
	}
	return endpoint{}, fmt.Errorf("malformed repository URL %s: want https://host/path, http://host/path, ssh://[user@]host[:port]/path or [user@]host:path", display)
}

// hostPort is host:port with the scheme's default port filled in.
func (e endpoint) hostPort() string {
	port := e.port
	if port == 0 {
		switch e.scheme {
		case "https":
			port = 443
		case "http":
			port = 80
		default:
			port = 22
		}
	}
	return joinHostPort(e.host, port)
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// validateGit checks options and fills in defaults; it touches the file
// system only to check that credential files exist.
func validateGit(o GitOptions) (GitOptions, endpoint, error) {
	ep, err := parseURL(o.URL)
	if err != nil {
		return o, ep, err
	}
	if err := o.Ref.Validate(); err != nil {
		return o, ep, fmt.Errorf("ref for %s: %w", ep.display, err)
	}
	if o.Dir == "" {
		return o, ep, errors.New("no work directory (GitOptions.Dir) given")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxSize > MaxSizeLimit {
		return o, ep, fmt.Errorf("MaxSize %s is over the limit of %s", formatBytes(o.MaxSize), formatBytes(MaxSizeLimit))
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := o.Auth
	both := func(x, y, what string) error {
		if x != "" && y != "" {
			return fmt.Errorf("%s: set the file or the environment variable, not both", what)
		}
		return nil
	}
	if err := errors.Join(
		both(a.PasswordFile, a.PasswordEnv, "password"),
		both(a.BearerTokenFile, a.BearerTokenEnv, "bearer token"),
	); err != nil {
		return o, ep, err
	}
	// The values of secret fields are never shown: a secret pasted into
	// the field by mistake would reach logs and status.
	for _, f := range []struct{ field, v string }{{"PasswordEnv", a.PasswordEnv}, {"BearerTokenEnv", a.BearerTokenEnv}} {
		if f.v != "" && !IsEnvName(f.v) {
			return o, ep, fmt.Errorf("the value of Auth.%s is not a valid environment variable name (letters, digits and '_', not starting with a digit; the value is not shown in case it is a secret)", f.field)
		}
	}
	hasPassword := a.PasswordFile != "" || a.PasswordEnv != ""
	hasToken := a.BearerTokenFile != "" || a.BearerTokenEnv != ""
	if ep.scheme != "ssh" && (ep.user != "" || ep.pass != "") {
		return o, ep, CredentialsInURL(ep.display)
	}
	if a.AllowInsecureHTTP && ep.scheme != "http" {
		return o, ep, fmt.Errorf("Auth.AllowInsecureHTTP is set but %s is not an http:// URL", ep.display)
	}
	switch ep.scheme {
	case "ssh":
		if hasPassword || hasToken || a.Username != "" || a.CAFile != "" {
			return o, ep, fmt.Errorf("%s is an SSH URL: username, password, bearer token and CA file apply to HTTPS only", ep.display)
		}
		if a.SSHKeyFile == "" {
			return o, ep, fmt.Errorf("%s is an SSH URL: Auth.SSHKeyFile is required", ep.display)
		}
		if a.KnownHostsFile == "" && !a.InsecureIgnoreHostKey {
			return o, ep, fmt.Errorf("%s is an SSH URL: Auth.KnownHostsFile is required (host keys are always checked unless InsecureIgnoreHostKey is set explicitly)", ep.display)
		}
		if a.KnownHostsFile != "" && a.InsecureIgnoreHostKey {
			return o, ep, errors.New("both set: Auth.KnownHostsFile and Auth.InsecureIgnoreHostKey; choose one")
		}
	default:
		if a.SSHKeyFile != "" || a.SSHPassphraseFile != "" || a.KnownHostsFile != "" || a.InsecureIgnoreHostKey {
			return o, ep, fmt.Errorf("%s is an HTTP(S) URL: SSH key, passphrase and known_hosts settings apply to SSH only", ep.display)
		}
		if hasPassword && hasToken {
			return o, ep, errors.New("both a password and a bearer token are configured: choose one")
		}
		if hasPassword && a.Username == "" {
			return o, ep, errors.New("a password is configured without Auth.Username")
		}
		if a.Username != "" && !hasPassword {
			return o, ep, errors.New("a username (Auth.Username) is set without PasswordFile or PasswordEnv")
		}
		if ep.scheme == "http" && (hasPassword || hasToken) && !a.AllowInsecureHTTP {
			return o, ep, InsecureHTTPCredentials(ep.display)
		}
		if a.CAFile != "" && ep.scheme != "https" {
			return o, ep, fmt.Errorf("a CA file (Auth.CAFile) is set but %s is not an https URL", ep.display)
		}
	}
	for _, f := range []struct {
		what, field, path string
		secret            bool
	}{
		{"password file", "PasswordFile", a.PasswordFile, true},
		{"bearer token file", "BearerTokenFile", a.BearerTokenFile, true},
		{"CA file", "CAFile", a.CAFile, false},
		{"SSH key file", "SSHKeyFile", a.SSHKeyFile, true},
		{"SSH passphrase file", "SSHPassphraseFile", a.SSHPassphraseFile, true},
		{"known_hosts file", "KnownHostsFile", a.KnownHostsFile, false},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			if f.secret {
				err = WithoutPath(err)
			}
			return o, ep, fmt.Errorf("%s (Auth.%s): %w", f.what, f.field, err)
		}
	}
	return o, ep, nil
}

// WithoutPath drops the path from a *fs.PathError, keeping the operation
// and the cause: the path of a secret file may be the secret itself,
// pasted into the wrong field.
func WithoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
