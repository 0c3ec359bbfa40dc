// Package sshserver runs a real OpenSSH sshd (Debian's openssh-server) for
// tests: on a free loopback port, with its own config, host key and
// authorized_keys, serving bare repositories (for example a gitserver's
// Root) to `git-upload-pack` over SSH. Clients log in as the user running
// the test and name repositories by absolute path; RepoURL builds the URL.
//
// sshd is started with a parent-death signal from a thread that lives as
// long as the test binary, so a killed test leaves no sshd behind.
package sshserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// SSHDPath is where Debian's openssh-server installs sshd (it must be run
// by absolute path).
const SSHDPath = "/usr/sbin/sshd"

// Options configure a Server.
type Options struct {
	// Root holds the bare repositories to serve; required.
	Root string
	// AuthorizedKeys are authorized_keys lines ("ssh-ed25519 AAAA… comment")
	// accepted for the login user; more can be added with AuthorizeKey.
	AuthorizedKeys []string
}

// Server is a running sshd.
type Server struct {
	// Host and Port are where sshd listens (127.0.0.1 and a free port).
	Host string
	Port int
	// User is the login user: the user running the test.
	User string
	// Root holds the served repositories.
	Root string
	// HostKey is the server's (ed25519) host key.
	HostKey ssh.PublicKey

	dir      string
	authKeys string
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	logs     *logBuffer
	mu       sync.Mutex
	stopOnce sync.Once
}

// Start writes a config, a host key and authorized_keys into a temporary
// folder, starts sshd on a free loopback port and waits until it answers
// with an SSH banner.
func Start(opts Options) (_ *Server, err error) {
	if opts.Root == "" {
		return nil, errors.New("sshserver: Options.Root is required")
	}
	if _, err := os.Stat(SSHDPath); err != nil {
		return nil, fmt.Errorf("sshd not found at %s (install openssh-server: `make deps`): %w", SSHDPath, err)
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation folder.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("creating /run/sshd: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "tether-sshd-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", User: u.Username, Root: root, dir: dir, logs: &logBuffer{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	line, err := GenerateKey(hostKeyPath, "")
	if err != nil {
		return nil, err
	}
	if s.HostKey, _, _, _, err = ssh.ParseAuthorizedKey([]byte(line)); err != nil {
		return nil, err
	}
	s.authKeys = filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(s.authKeys, []byte(strings.Join(opts.AuthorizedKeys, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	s.Port, err = cluster.FreePort()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(config, []byte(s.config(hostKeyPath)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", config)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cluster.Spawn(cmd); err != nil {
		return nil, fmt.Errorf("starting sshd: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(15 * time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) config(hostKey string) string {
	lines := []string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress " + s.Host,
		"HostKey " + hostKey,
		"PidFile none",
		"AuthorizedKeysFile " + s.authKeys,
		"StrictModes no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + s.User,
		"LogLevel VERBOSE",
		"PrintMotd no",
		"UseDNS no",
		"PermitTTY no",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		"AllowAgentForwarding no",
		"MaxStartups 100:30:200",
		"MaxAuthTries 10",
	}
	if sshdAtLeast(9, 8) {
		// Newer sshd penalizes addresses with failed logins; tests fail
		// logins on purpose.
		lines = append(lines, "PerSourcePenalties no")
	}
	return strings.Join(lines, "\n") + "\n"
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("sshd exited (%v); its log:\n%s", s.waitErr, s.Logs())
		default:
		}
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			n, _ := conn.Read(buf)
			_ = conn.Close()
			if strings.HasPrefix(string(buf[:n]), "SSH-") {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("sshd did not answer on %s within %s; its log:\n%s", s.Addr(), timeout, s.Logs())
}

// Close stops sshd (and its session processes) and removes its folder.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			pgid := s.cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-s.done
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		_ = os.RemoveAll(s.dir)
	})
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// RepoURL is the ssh:// URL of the bare repository Root/NAME.git.
func (s *Server) RepoURL(name string) string {
	return fmt.Sprintf("ssh://%s@%s%s/%s.git", s.User, s.Addr(), filepath.ToSlash(s.Root), name)
}

// KnownHostsLine is the known_hosts line that trusts this server's host
// key ("[127.0.0.1]:PORT ssh-ed25519 AAAA…").
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey)
}

// AuthorizeKey adds an authorized_keys line; sshd reads the file on every
// login.
func (s *Server) AuthorizeKey(line string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(strings.TrimSpace(line) + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Logs returns what sshd logged so far (it logs to stderr with -e).
func (s *Server) Logs() string { return s.logs.String() }

// Count is how many log lines contain substr, e.g. "Accepted publickey"
// (a login) or "Starting session: command" (a git command run).
func (s *Server) Count(substr string) int { return strings.Count(s.Logs(), substr) }

// GenerateKey writes a new ed25519 private key in OpenSSH format to path
// (mode 0600), encrypted when passphrase is set, and returns its public
// half as an authorized_keys line.
func GenerateKey(path, passphrase string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "tether-e2e")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "tether-e2e", []byte(passphrase))
	}
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " tether-e2e", nil
}

// sshdAtLeast reports whether the installed sshd is at least major.minor.
func sshdAtLeast(major, minor int) bool {
	out, _ := exec.Command(SSHDPath, "-V").CombinedOutput()
	m := regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(string(m[1]))
	mi, _ := strconv.Atoi(string(m[2]))
	return ma > major || ma == major && mi >= minor
}

// logBuffer keeps sshd's output, up to 1 MiB.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 1<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
