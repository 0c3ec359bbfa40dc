package source

import (
	"errors"
	"fmt"
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
	// DefaultMaxSize caps the bytes of file content in one checkout.
	DefaultMaxSize = 256 << 20
	// DefaultMaxFiles caps the files and symlinks in one checkout.
	DefaultMaxFiles = 100_000
)

// maxRefAdvertisement caps the size of a ref listing; a remote that
// advertises more is refused rather than buffered.
const maxRefAdvertisement = 64 << 20

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
	// their target's length); default DefaultMaxSize. The transfer itself
	// is cut off at MaxSize plus a quarter plus 1 MiB (packs also hold
	// commits and trees).
	MaxSize int64
	// MaxFiles caps the files and symlinks in a checkout; default
	// DefaultMaxFiles.
	MaxFiles int
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
		if u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
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
			return endpoint{}, fmt.Errorf("repository URL %s: passwords in ssh URLs are not supported, use Auth.SSHKeyFile", display)
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
			return endpoint{}, fmt.Errorf("repository URL %s: passwords in ssh URLs are not supported, use Auth.SSHKeyFile", display)
		}
		return endpoint{scheme: "ssh", host: m[2], user: m[1], path: m[3], plain: raw, display: display}, nil
	}
	if strings.Contains(raw, "://") {
		return endpoint{}, fmt.Errorf("malformed repository URL %s: bad scheme", display)
	}
	return endpoint{}, fmt.Errorf("malformed repository URL %s: want https://host/path, http://host/path, ssh://host/path or user@host:path", display)
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
	hasPassword := a.PasswordFile != "" || a.PasswordEnv != ""
	hasToken := a.BearerTokenFile != "" || a.BearerTokenEnv != ""
	hasURLCreds := ep.scheme != "ssh" && ep.user != ""
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
		if hasURLCreds && (hasPassword || hasToken) {
			return o, ep, fmt.Errorf("%s carries credentials and Auth configures others: choose one", ep.display)
		}
		if a.CAFile != "" && ep.scheme != "https" {
			return o, ep, fmt.Errorf("a CA file (Auth.CAFile) is set but %s is not an https URL", ep.display)
		}
	}
	for _, f := range []struct{ what, path string }{
		{"password file", a.PasswordFile},
		{"bearer token file", a.BearerTokenFile},
		{"CA file", a.CAFile},
		{"SSH key file", a.SSHKeyFile},
		{"SSH passphrase file", a.SSHPassphraseFile},
		{"known_hosts file", a.KnownHostsFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return o, ep, fmt.Errorf("%s: %w", f.what, err)
		}
	}
	return o, ep, nil
}
