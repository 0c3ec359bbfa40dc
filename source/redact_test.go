package source

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:pass@github.com/org/repo.git", "https://***@github.com/org/repo.git"},
		{"https://ghp_token123@github.com/org/repo.git", "https://***@github.com/org/repo.git"},
		{"http://user:p%40ss@host:8080/x", "http://***@host:8080/x"},
		{"https://user:pa@ss@host/x", "https://***@host/x"}, // unescaped @ in the password
		{"https://host/x@y", "https://host/x@y"},            // @ in the path is not userinfo
		{"https://host/x?u=a@b", "https://host/x?u=a@b"},
		{"https://user:pass@host", "https://***@host"},
		{"https://user:pass@host?q", "https://***@host?q"},
		{"HTTPS://u:p@host/x", "HTTPS://***@host/x"},
		{"https://github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"}, // a bare ssh user is not secret
		{"ssh://git:secret@host/x", "ssh://***@host/x"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"git:secret@github.com:org/repo.git", "***@github.com:org/repo.git"},
		{"https://exa mple.com/x", "https://exa mple.com/x"}, // does not parse, nothing to hide
		{"https://us er:pa ss@exa mple.com/x", "https://***@exa mple.com/x"},
		{"ftp://u:p@host/x", "ftp://***@host/x"},
		{"not a url", "not a url"},
		{"", ""},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in                       string
		scheme, host, path, user string
		port                     int
		plain, hostPort          string
		wantErr                  string
	}{
		{in: "https://github.com/org/repo.git", scheme: "https", host: "github.com", path: "/org/repo.git",
			plain: "https://github.com/org/repo.git", hostPort: "github.com:443"},
		{in: "http://u:p@127.0.0.1:8080/app.git", scheme: "http", host: "127.0.0.1", port: 8080, path: "/app.git", user: "u",
			plain: "http://127.0.0.1:8080/app.git", hostPort: "127.0.0.1:8080"},
		{in: "ssh://git@host:2222/srv/app.git", scheme: "ssh", host: "host", port: 2222, path: "/srv/app.git", user: "git",
			plain: "ssh://git@host:2222/srv/app.git", hostPort: "host:2222"},
		{in: "ssh://[::1]/app.git", scheme: "ssh", host: "::1", path: "/app.git", plain: "ssh://[::1]/app.git", hostPort: "[::1]:22"},
		{in: "git@github.com:org/repo.git", scheme: "ssh", host: "github.com", path: "org/repo.git", user: "git",
			plain: "git@github.com:org/repo.git", hostPort: "github.com:22"},
		{in: "github.com:org/repo.git", scheme: "ssh", host: "github.com", path: "org/repo.git",
			plain: "github.com:org/repo.git", hostPort: "github.com:22"},
		{in: "", wantErr: "no repository URL"},
		{in: "ftp://host/x", wantErr: `unsupported URL scheme "ftp"`},
		{in: "file:///x", wantErr: `unsupported URL scheme "file"`},
		{in: "https://host", wantErr: "no repository path"},
		{in: "https:///x", wantErr: "no host"},
		{in: "https://host:99999/x", wantErr: "malformed repository URL"},
		{in: "https://host/x?token=1", wantErr: "queries and fragments"},
		{in: "https://u:pw-123456@exa mple/x", wantErr: "malformed repository URL https://***@exa mple/x"},
		{in: "ssh://git:pw@host/x", wantErr: "passwords in ssh URLs"},
		{in: "git:pw@host:x", wantErr: "passwords in ssh URLs"},
		{in: "/srv/app.git", wantErr: "malformed repository URL"},
		{in: "./app.git", wantErr: "malformed repository URL"},
		{in: "a url", wantErr: "malformed repository URL"},
	} {
		ep, err := parseURL(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseURL(%q) = %+v, %v; want error %q", tc.in, ep, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw-123456") {
				t.Errorf("parseURL(%q) error leaks the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.in, err)
			continue
		}
		if ep.scheme != tc.scheme || ep.host != tc.host || ep.port != tc.port || ep.path != tc.path || ep.user != tc.user ||
			ep.plain != tc.plain || ep.hostPort() != tc.hostPort || ep.display != Redact(tc.in) {
			t.Errorf("parseURL(%q) = %+v (hostPort %s)", tc.in, ep, ep.hostPort())
		}
	}
}

func TestScrubber(t *testing.T) {
	var sc scrubber
	sc.add("hunter22")
	sc.add("abc") // too short to scrub
	sc.add("")
	base := errors.New("server said: bad password hunter22 for abc")
	err := sc.err(fmt.Errorf("fetching: %w", base))
	if strings.Contains(err.Error(), "hunter22") || !strings.Contains(err.Error(), "bad password *** for abc") {
		t.Errorf("scrubbed error %q", err)
	}
	if !errors.Is(err, base) {
		t.Error("errors.Is does not see through the scrubbed error")
	}
	if u := errors.Unwrap(err); u != nil {
		t.Errorf("the original (secret-bearing) error can be unwrapped: %v", u)
	}
	plain := errors.New("nothing secret")
	if sc.err(plain) != plain {
		t.Error("an error without secrets was wrapped")
	}
	if sc.err(nil) != nil {
		t.Error("nil became an error")
	}
}

func TestNewGitValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	main := Ref{Branch: "main"}
	for _, tc := range []struct {
		name string
		opts GitOptions
		want string
	}{
		{"no URL", GitOptions{Ref: main, Dir: dir}, "no repository URL"},
		{"unknown scheme", GitOptions{URL: "svn://h/x", Ref: main, Dir: dir}, `unsupported URL scheme "svn"`},
		{"no ref", GitOptions{URL: "https://h/x", Dir: dir}, "no ref given"},
		{"two refs", GitOptions{URL: "https://h/x", Ref: Ref{Branch: "a", Tag: "b"}, Dir: dir}, "more than one"},
		{"no Dir", GitOptions{URL: "https://h/x", Ref: main}, "GitOptions.Dir"},
		{"ssh without key", GitOptions{URL: "git@h:x", Ref: main, Dir: dir}, "SSHKeyFile is required"},
		{"ssh without known_hosts", GitOptions{URL: "git@h:x", Ref: main, Dir: dir, Auth: Auth{SSHKeyFile: file}}, "KnownHostsFile is required"},
		{"ssh with both host key settings", GitOptions{URL: "git@h:x", Ref: main, Dir: dir,
			Auth: Auth{SSHKeyFile: file, KnownHostsFile: file, InsecureIgnoreHostKey: true}}, "both set"},
		{"ssh with a password", GitOptions{URL: "git@h:x", Ref: main, Dir: dir,
			Auth: Auth{SSHKeyFile: file, KnownHostsFile: file, Username: "u", PasswordFile: file}}, "apply to HTTPS only"},
		{"https with an ssh key", GitOptions{URL: "https://h/x", Ref: main, Dir: dir, Auth: Auth{SSHKeyFile: file}}, "apply to SSH only"},
		{"password without user", GitOptions{URL: "https://h/x", Ref: main, Dir: dir, Auth: Auth{PasswordFile: file}}, "without Auth.Username"},
		{"user without password", GitOptions{URL: "https://h/x", Ref: main, Dir: dir, Auth: Auth{Username: "u"}}, "without PasswordFile"},
		{"password file and variable", GitOptions{URL: "https://h/x", Ref: main, Dir: dir,
			Auth: Auth{Username: "u", PasswordFile: file, PasswordEnv: "P"}}, "not both"},
		{"password and token", GitOptions{URL: "https://h/x", Ref: main, Dir: dir,
			Auth: Auth{Username: "u", PasswordFile: file, BearerTokenEnv: "T"}}, "choose one"},
		{"URL credentials and Auth", GitOptions{URL: "https://u:p@h/x", Ref: main, Dir: dir, Auth: Auth{BearerTokenEnv: "T"}}, "credentials in the URL (https://***@h/x) are not allowed"},
		{"URL credentials", GitOptions{URL: "http://u:p@h/x", Ref: main, Dir: dir}, "credentials in the URL (http://***@h/x) are not allowed"},
		{"token in the URL", GitOptions{URL: "https://ghp_abc@h/x", Ref: main, Dir: dir}, "credentials in the URL (https://***@h/x) are not allowed"},
		{"password over plain http", GitOptions{URL: "http://h/x", Ref: main, Dir: dir, Auth: Auth{Username: "u", PasswordEnv: "P"}}, "refusing to send a password or token over plain http (http://h/x)"},
		{"token over plain http", GitOptions{URL: "http://h/x", Ref: main, Dir: dir, Auth: Auth{BearerTokenEnv: "T"}}, "refusing to send a password or token over plain http"},
		{"insecure http on https", GitOptions{URL: "https://h/x", Ref: main, Dir: dir, Auth: Auth{AllowInsecureHTTP: true}}, "AllowInsecureHTTP is set but https://h/x is not an http:// URL"},
		{"CA file on http", GitOptions{URL: "http://h/x", Ref: main, Dir: dir, Auth: Auth{CAFile: file}}, "not an https URL"},
		{"missing password file", GitOptions{URL: "https://h/x", Ref: main, Dir: dir, Auth: Auth{Username: "u", PasswordFile: missing}}, "password file (Auth.PasswordFile): stat: no such file or directory"},
		{"missing known_hosts", GitOptions{URL: "ssh://h/x", Ref: main, Dir: dir, Auth: Auth{SSHKeyFile: file, KnownHostsFile: missing}}, "known_hosts file (Auth.KnownHostsFile): stat " + missing},
		{"MaxSize over the limit", GitOptions{URL: "https://h/x", Ref: main, Dir: dir, MaxSize: 1 << 62}, "MaxSize 4294967296 GiB is over the limit of 4 GiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGit(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewGit = %v, %v; want an error containing %q", g, err, tc.want)
			}
		})
	}
	g, err := NewGit(GitOptions{URL: "https://h/x", Ref: main, Dir: dir, Auth: Auth{Username: "u", PasswordEnv: "P"}})
	if err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	if g.opts.Timeout != DefaultTimeout || g.opts.MaxSize != DefaultMaxSize || g.opts.MaxFiles != DefaultMaxFiles || g.Current() != nil {
		t.Errorf("defaults not applied: %+v", g.opts)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	if err := os.WriteFile(file, []byte("s3cret\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := readSecret("password", "Password", file, "", nil); err != nil || v != "s3cret" {
		t.Errorf("from a file: %q, %v", v, err)
	}
	env := func(k string) string { return map[string]string{"P": "from-env"}[k] }
	if v, err := readSecret("password", "Password", "", "P", env); err != nil || v != "from-env" {
		t.Errorf("from a variable: %q, %v", v, err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// F10: errors name the field, never the variable or the file: either
	// may be the secret itself, pasted into the wrong field.
	for _, tc := range []struct {
		file, env, want string
	}{
		{"", "hunter2-pasted-secret", "the password variable (Auth.PasswordEnv) is unset or empty"},
		{empty, "", "the password file (Auth.PasswordFile) is empty"},
		{"/hunter2-pasted-secret", "", "reading the password file (Auth.PasswordFile): stat: no such file or directory"},
	} {
		_, err := readSecret("password", "Password", tc.file, tc.env, env)
		if err == nil || err.Error() != tc.want {
			t.Errorf("readSecret(%q, %q) = %v, want %q", tc.file, tc.env, err, tc.want)
		}
	}
}

// F10: a secret pasted into a field that names a file or a variable is
// never shown in NewGit's errors.
func TestNewGitDoesNotEchoSecretFields(t *testing.T) {
	const secret = "ghp_pasted0secret0value"
	main := Ref{Branch: "main"}
	for _, tc := range []struct {
		name string
		auth Auth
		url  string
		want string
	}{
		{"password variable", Auth{Username: "u", PasswordEnv: secret + "-x"}, "https://h/x", "the value of Auth.PasswordEnv is not a valid environment variable name"},
		{"token variable", Auth{BearerTokenEnv: "Bearer " + secret}, "https://h/x", "the value of Auth.BearerTokenEnv is not a valid environment variable name"},
		{"password file", Auth{Username: "u", PasswordFile: secret}, "https://h/x", "password file (Auth.PasswordFile): stat: no such file or directory"},
		{"token file", Auth{BearerTokenFile: secret}, "https://h/x", "bearer token file (Auth.BearerTokenFile): stat: no such file or directory"},
		{"ssh key file", Auth{SSHKeyFile: "-----BEGIN OPENSSH PRIVATE KEY-----\n" + secret, InsecureIgnoreHostKey: true}, "git@h:x", "SSH key file (Auth.SSHKeyFile): stat: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewGit(GitOptions{URL: tc.url, Ref: main, Dir: t.TempDir(), Auth: tc.auth})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the value: %v", err)
			}
		})
	}
}

// F10: the scrubber removes credentials in the forms they travel in, not
// only their plain values.
func TestScrubberForms(t *testing.T) {
	var sc scrubber
	sc.addBasic("alice", "pa:ss/word")
	sc.addBasic("ghp_token0in0the0url", "") // a token as the URL's user
	sc.addBearer("tok-123456")
	for _, leak := range []string{
		"pa:ss/word",
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pa:ss/word")),
		"basic " + base64.RawURLEncoding.EncodeToString([]byte("alice:pa:ss/word")),
		"https://alice:" + url.QueryEscape("pa:ss/word") + "@host/x",
		"https://alice:" + url.PathEscape("pa:ss/word") + "@host/x",
		"https://ghp_token0in0the0url@host/x",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("ghp_token0in0the0url:")),
		"Authorization: Bearer tok-123456",
		"Bearer " + base64.StdEncoding.EncodeToString([]byte("tok-123456")),
	} {
		got := sc.scrub(leak)
		for _, secret := range []string{"pa:ss/word", "pa%3Ass%2Fword", "pa:ss%2Fword", "ghp_token0in0the0url", "tok-123456",
			base64.StdEncoding.EncodeToString([]byte("alice:pa:ss/word"))[:20]} {
			if strings.Contains(got, secret) {
				t.Errorf("scrub(%q) = %q still holds %q", leak, got, secret)
			}
		}
		if !strings.Contains(got, "***") {
			t.Errorf("scrub(%q) = %q", leak, got)
		}
	}
	if got := sc.scrub("user alice at host"); got != "user alice at host" {
		t.Errorf("a user name alone was scrubbed: %q", got)
	}
}

// ValidateURL is what config calls: the scheme, whether an http(s) URL
// carries credentials, and the same errors as NewGit.
func TestValidateURL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    URLInfo
		wantErr string
	}{
		{in: "https://github.com/org/repo.git", want: URLInfo{Scheme: "https"}},
		{in: "HTTP://gitea.local:3000/org/repo", want: URLInfo{Scheme: "http"}},
		{in: "https://u:p@h/x", want: URLInfo{Scheme: "https", Credentials: true}},
		{in: "https://token@h/x", want: URLInfo{Scheme: "https", Credentials: true}},
		{in: "ssh://git@h/x", want: URLInfo{Scheme: "ssh"}},
		{in: "git@github.com:org/repo.git", want: URLInfo{Scheme: "ssh"}},
		{in: "https://h/x?", wantErr: "queries and fragments are not supported"},
		{in: "https://h/x#f", wantErr: "queries and fragments are not supported"},
		{in: "git+ssh://h/x", wantErr: `unsupported URL scheme "git+ssh"`},
		{in: "ssh://git:pw-123456@h/x", wantErr: "ssh://***@h/x: passwords in ssh URLs are not supported"},
	} {
		got, err := ValidateURL(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ValidateURL(%q) = %+v, %v; want error %q", tc.in, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ValidateURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
