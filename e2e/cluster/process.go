package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child process of the control plane, with its output kept in
// a log file and the last lines kept in memory for error messages.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	tail    *tailBuffer
	done    chan struct{}
	waitErr error
}

// spawner starts every child from one goroutine locked to its OS thread for
// the life of the test binary. Children get SIGKILL from the kernel when
// their parent thread dies (Pdeathsig), and that is the thread that started
// them, not the process: starting them from a thread that never exits makes
// Pdeathsig mean "when the test binary dies", even if it is SIGKILLed and no
// cleanup runs.
type spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

var theSpawner spawner

// Spawn starts cmd from the spawner thread, so that a child started with
// Pdeathsig dies exactly when this process does (other test servers use it
// too).
func Spawn(cmd *exec.Cmd) error { return theSpawner.start(cmd) }

func (s *spawner) start(cmd *exec.Cmd) error {
	s.once.Do(func() {
		s.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			// Never unlocked and never returns: the thread lives as long as
			// the process.
			for req := range s.reqs {
				req.errc <- req.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, errc: errc}
	return <-errc
}

// startProcess starts bin with args, logging to dir/name.log.
func startProcess(dir, name, bin string, args []string, env []string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	tail := &tailBuffer{max: 64 << 10}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = io.MultiWriter(logFile, tail)
	cmd.Stderr = cmd.Stdout
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := theSpawner.start(cmd); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, tail: tail, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Anything left in the group (there should be nothing) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// failure describes a process that ended or failed, with its last log lines.
func (p *process) failure(what string) error {
	state := "is running"
	if p.exited() {
		state = fmt.Sprintf("exited (%v)", p.waitErr)
	}
	return fmt.Errorf("%s: %s %s; last log lines (full log: %s):\n%s", what, p.name, state, p.logPath, p.tail.lastLines(25))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimRight(t.buf, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "    " + string(l)
	}
	return strings.Join(out, "\n")
}

// alive reports whether a process with this pid exists (and is not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
