package source

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshSession runs git-upload-pack over one SSH connection. It is written
// here rather than taken from go-git's ssh transport because that one dials
// without the caller's context (a server that accepts TCP and never speaks
// hangs it), reads ~/.ssh/config and /etc/ssh/ssh_config through a global,
// and honours proxy variables from the process environment. Everything
// above the byte stream (ref advertisement, upload-pack request and
// response) is go-git's.
type sshSession struct {
	// answerLimit caps the answer to a fetch; over records a refusal.
	answerLimit int64
	over        *overLimit

	conn    net.Conn
	client  *ssh.Client
	sess    *ssh.Session
	stdin   io.WriteCloser
	stdout  *bufio.Reader
	stderr  *tailWriter
	stop    func() bool
	packRun bool
	closed  bool
}

// dialSSH connects, authenticates, checks the host key and starts
// git-upload-pack. ctx bounds every step: when it is done the connection
// is closed, which unblocks any read or write.
func dialSSH(ctx context.Context, ep endpoint, cfg *ssh.ClientConfig, answerLimit int64, over *overLimit) (*sshSession, error) {
	return dialSSHService(ctx, ep, cfg, "git-upload-pack", answerLimit, over)
}

// dialSSHService is dialSSH for a git service: git-upload-pack (fetch) or
// git-receive-pack (push).
func dialSSHService(ctx context.Context, ep endpoint, cfg *ssh.ClientConfig, service string, answerLimit int64, over *overLimit) (*sshSession, error) {
	addr := ep.hostPort()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	fail := func(err error) (*sshSession, error) {
		stop()
		_ = conn.Close()
		return nil, err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		return fail(err)
	}
	client := ssh.NewClient(c, chans, reqs)
	sess, err := client.NewSession()
	if err != nil {
		_ = client.Close()
		return fail(err)
	}
	s := &sshSession{conn: conn, client: client, sess: sess, stop: stop, stderr: &tailWriter{max: 4096},
		answerLimit: answerLimit, over: over}
	s.sess.Stderr = s.stderr
	if s.stdin, err = sess.StdinPipe(); err != nil {
		s.close()
		return nil, err
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		s.close()
		return nil, err
	}
	s.stdout = bufio.NewReaderSize(out, 64<<10)
	if err := sess.Start(service + " " + shellQuote(ep.path)); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *sshSession) listRefs(ctx context.Context) (*packp.AdvRefs, error) {
	ar := packp.NewAdvRefs()
	err := ar.Decode(&cappedReader{r: s.stdout, left: maxRefAdvertisement, over: s.over,
		tooLarge: fmt.Errorf("%w: the ref listing is larger than %s (the remote advertises too many refs)", ErrTooLarge, formatBytes(maxRefAdvertisement))})
	if over := s.over.get(); over != nil {
		return nil, over
	}
	switch {
	case err == nil:
	case errors.Is(err, packp.ErrEmptyAdvRefs):
		return nil, transport.ErrEmptyRemoteRepository
	default:
		var el *pktline.ErrorLine
		if errors.As(err, &el) {
			return nil, fmt.Errorf("server error: %s", el.Text)
		}
		// The command usually failed; its reason is on stderr.
		if msg := s.remoteMessage(ctx); msg != "" {
			return nil, fmt.Errorf("git-upload-pack failed: %s", msg)
		}
		return nil, err
	}
	if ar.IsEmpty() {
		return nil, transport.ErrEmptyRemoteRepository
	}
	transport.FilterUnsupportedCapabilities(ar.Capabilities)
	return ar, nil
}

// remoteMessage waits briefly for the remote command to end and returns
// the first line of what it wrote to stderr.
func (s *sshSession) remoteMessage(ctx context.Context) string {
	done := make(chan struct{})
	go func() {
		_ = s.sess.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	return s.stderr.firstLine()
}

func (s *sshSession) uploadPack(ctx context.Context, req *packp.UploadPackRequest) (io.ReadCloser, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	s.packRun = true
	w := bufio.NewWriter(s.stdin)
	if err := req.UploadRequest.Encode(w); err != nil {
		return nil, fmt.Errorf("sending upload-pack request: %w", err)
	}
	if err := req.UploadHaves.Encode(w, true); err != nil {
		return nil, fmt.Errorf("sending upload-pack request: %w", err)
	}
	if err := pktline.NewEncoder(w).EncodeString("done\n"); err != nil {
		return nil, fmt.Errorf("sending upload-pack request: %w", err)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("sending upload-pack request: %w", err)
	}
	_ = s.stdin.Close()
	res := packp.NewUploadPackResponse(req)
	answer := &cappedReader{r: s.stdout, left: s.answerLimit, over: s.over,
		tooLarge: fmt.Errorf("%w: the server's answer passed %s (the transfer allowance plus room for framing)", ErrTooLarge, formatBytes(s.answerLimit))}
	if err := res.Decode(io.NopCloser(answer)); err != nil {
		if over := s.over.get(); over != nil {
			return nil, over
		}
		if msg := s.stderr.firstLine(); msg != "" {
			return nil, fmt.Errorf("%w (%s)", err, msg)
		}
		return nil, err
	}
	return res, nil
}

func (s *sshSession) close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.packRun && s.stdin != nil {
		// End the conversation politely: a flush-pkt instead of wants.
		_, _ = s.stdin.Write(pktline.FlushPkt)
		_ = s.stdin.Close()
	}
	_ = s.sess.Close()
	err := s.client.Close()
	s.stop()
	_ = s.conn.Close()
	if err != nil && strings.Contains(err.Error(), "use of closed network connection") {
		return nil
	}
	return err
}

// shellQuote quotes a path for the remote shell, as git does.
func shellQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '!':
			b.WriteString(`'\`)
			b.WriteByte(c)
			b.WriteByte('\'')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// tailWriter keeps the first max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - t.buf.Len(); room > 0 {
		if len(p) > room {
			t.buf.Write(p[:room])
		} else {
			t.buf.Write(p)
		}
	}
	return len(p), nil
}

func (t *tailWriter) firstLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, line := range strings.Split(t.buf.String(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

// hostKeyCheck verifies host keys against a known_hosts file and remembers
// why it refused one, so the error can say so plainly.
type hostKeyCheck struct {
	file     string
	callback ssh.HostKeyCallback
	mu       sync.Mutex
	refused  error
}

// newHostKeyCheck loads a known_hosts file. The host key algorithms to
// offer are the types known for addr, so that a server holding several host
// keys presents one we can check instead of one we have never seen.
func newHostKeyCheck(file, addr string) (*hostKeyCheck, []string, error) {
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, nil, fmt.Errorf("reading known_hosts file %s: %w", file, err)
	}
	h := &hostKeyCheck{file: file, callback: cb}
	return h, knownAlgorithms(cb, addr), nil
}

func (h *hostKeyCheck) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.callback(hostname, remote, key)
	if err == nil {
		return nil
	}
	var kerr *knownhosts.KeyError
	switch {
	case errors.As(err, &kerr) && len(kerr.Want) == 0:
		err = fmt.Errorf("%w: host %s is not in known_hosts file %s (it presented %s key %s)",
			ErrHostKey, hostname, h.file, key.Type(), ssh.FingerprintSHA256(key))
	case errors.As(err, &kerr):
		err = fmt.Errorf("%w: host %s presented %s key %s, which does not match known_hosts file %s (a man-in-the-middle, or the server's key changed)",
			ErrHostKey, hostname, key.Type(), ssh.FingerprintSHA256(key), h.file)
	default:
		var rerr *knownhosts.RevokedError
		if errors.As(err, &rerr) {
			err = fmt.Errorf("%w: host %s presented a key revoked in %s", ErrHostKey, hostname, h.file)
		} else {
			err = fmt.Errorf("%w: host %s: %w", ErrHostKey, hostname, err)
		}
	}
	h.mu.Lock()
	h.refused = err
	h.mu.Unlock()
	return err
}

func (h *hostKeyCheck) refusal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused
}

// knownAlgorithms asks the known_hosts callback which keys it holds for
// addr (it lists them when shown a key it does not know) and returns the
// matching host key algorithms, or nil to keep the defaults.
func knownAlgorithms(cb ssh.HostKeyCallback, addr string) []string {
	probe := ssh.PublicKey(nil)
	if pub, _, err := ed25519.GenerateKey(nil); err == nil {
		probe, _ = ssh.NewPublicKey(pub)
	}
	if probe == nil {
		return nil
	}
	// A placeholder remote address: only the host name's entries count.
	var kerr *knownhosts.KeyError
	if err := cb(addr, &net.TCPAddr{IP: net.IPv4zero}, probe); !errors.As(err, &kerr) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algos = append(algos, x)
			}
		}
	}
	for _, k := range kerr.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}
