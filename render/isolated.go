package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Defaults for the limits of Isolated.
const (
	// DefaultMemoryLimit caps the memory of the rendering process. kustomize
	// can hold some 800 bytes of memory per byte of input (a 1 MiB flow
	// list peaked at 826 MB), so without a cap one bad commit could take
	// the agent's whole pod down, again at every retry. Keep it well below
	// the pod's memory limit minus what the agent itself uses.
	DefaultMemoryLimit int64 = 768 << 20
	// DefaultCPULimit caps the CPU time of the rendering process (all its
	// threads). kustomize cannot be interrupted, and some inputs take it
	// minutes (a strategic-merge patch over a list of 8,000 items: 60 s).
	DefaultCPULimit = 2 * time.Minute
)

// Isolated builds in a child process, so that a hostile revision cannot take
// the agent down or reach the network: the child caps its own memory and CPU
// time with hard limits of the kernel before it reads anything from the
// checkout, cannot open a network connection (its HTTP transport refuses to
// dial) and cannot run a program (its PATH is empty, so kustomize's git
// cloner finds no git), and the parent kills it when the context ends.
// Build runs in the child exactly as it runs in-process; the objects, their
// sources and the errors come back through a pipe.
//
// Command is the program that runs ServeChild: tether re-executes itself
// (os.Executable() and a hidden "__render" command). An Isolated is safe
// for concurrent use; every Build starts its own child.
type Isolated struct {
	// Command is the program and arguments that run ServeChild.
	Command []string
	// MemoryLimit caps the child's memory, in bytes: its data segment
	// (RLIMIT_DATA, which is everything the Go runtime maps writable: heap,
	// stacks, runtime structures). Default DefaultMemoryLimit.
	MemoryLimit int64
	// CPULimit caps the CPU time of the child, all threads, user and
	// system, rounded up to whole seconds (RLIMIT_CPU: the soft limit, at
	// which the child answers with a CPU-limit error; the kernel kills it
	// cpuGrace later). Default DefaultCPULimit.
	CPULimit time.Duration
	// Env is the child's whole environment: it does not inherit the
	// parent's, so credentials stay out of it. PATH is removed from it.
	Env []string
}

// childProtocol is the version of what parent and child exchange; both are
// the same binary, but a binary replaced on disk under a running agent
// could meet an older one.
const childProtocol = 2

// maxRequest bounds what the child reads from its stdin.
const maxRequest = 1 << 20

// childRequest is what the parent writes to the child's stdin.
type childRequest struct {
	Protocol    int           `json:"protocol"`
	Options     Options       `json:"options"`
	MemoryLimit int64         `json:"memoryLimit"`
	CPULimit    time.Duration `json:"cpuLimit"`
	// ReportFD is the child's descriptor of the report pipe (see
	// report.go); 0 when there is none.
	ReportFD int `json:"reportFD,omitempty"`
}

// childAnswer is what the child writes to its stdout: the objects, or the
// error of the build.
type childAnswer struct {
	Protocol int           `json:"protocol"`
	Sources  []string      `json:"sources,omitempty"` // each source once; objects refer to them by index
	Objects  []childObject `json:"objects,omitempty"`
	Error    *childError   `json:"error,omitempty"`
}

// childObject is one rendered object.
type childObject struct {
	Source int             `json:"source"` // index into childAnswer.Sources
	Object json.RawMessage `json:"object"`
}

// childError is an error of the build, with what the parent needs to
// rebuild an equivalent one.
type childError struct {
	// Plain says the error was not an *Error (bad options, an unreadable
	// root); Message is then its text.
	Plain  bool   `json:"plain,omitempty"`
	File   string `json:"file,omitempty"`
	Entry  string `json:"entry,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Message is the text of the *Error's Err ("" when Err was nil), or of
	// the plain error.
	Message string `json:"message,omitempty"`
	// Categories are the names (errorCategories) of the categories the
	// error belongs to, for errors.Is.
	Categories []string `json:"categories,omitempty"`
}

// errorCategory names an error that errors.Is must still find in an error
// that crossed from the child to the parent.
type errorCategory struct {
	name string
	err  error
}

// errorCategories returns the errors that survive the trip from the child:
// the Err* categories, the context's errors and the file system's.
func errorCategories() []errorCategory {
	return []errorCategory{
		{"remote", ErrRemote},
		{"plugin", ErrPlugin},
		{"helm", ErrHelm},
		{"escape", ErrEscape},
		{"too-large", ErrTooLarge},
		{"yaml-nodes", ErrYAMLNodes},
		{"not-object", ErrNotObject},
		{"invalid", ErrInvalid},
		{"duplicate", ErrDuplicate},
		{"provenance", ErrProvenance},
		{"canceled", context.Canceled},
		{"deadline-exceeded", context.DeadlineExceeded},
		{"not-exist", fs.ErrNotExist},
		{"invalid-file", fs.ErrInvalid},
	}
}

// encodeError turns an error of Build into what the child sends.
func encodeError(err error) *childError {
	ce := &childError{}
	for _, c := range errorCategories() {
		if errors.Is(err, c.err) {
			ce.Categories = append(ce.Categories, c.name)
		}
	}
	e, ok := err.(*Error)
	if !ok {
		ce.Plain, ce.Message = true, err.Error()
		return ce
	}
	ce.File, ce.Entry, ce.Reason = e.File, e.Entry, e.Reason
	if e.Err != nil {
		ce.Message = e.Err.Error()
	}
	return ce
}

// childCause stands in the parent for the Err of an error from the child:
// it has the same text and wraps the same categories.
type childCause struct {
	msg  string
	cats []error
}

func (c *childCause) Error() string   { return c.msg }
func (c *childCause) Unwrap() []error { return c.cats }

// decode rebuilds in the parent an error equivalent to the one the child
// sent: the same text, an *Error with the same File, Entry and Reason
// unless the original was a plain error, and errors.Is true for the same
// categories.
func (ce *childError) decode() error {
	var cats []error
	for _, name := range ce.Categories {
		for _, c := range errorCategories() {
			if c.name == name {
				cats = append(cats, c.err)
			}
		}
	}
	var cause error
	switch {
	case len(cats) == 1 && cats[0].Error() == ce.Message:
		cause = cats[0] // the category itself, as refusal sets it
	case ce.Message != "" || len(cats) > 0:
		cause = &childCause{msg: ce.Message, cats: cats}
	}
	if ce.Plain {
		if cause == nil {
			return errors.New("render: the renderer failed without a message")
		}
		return cause
	}
	return &Error{File: ce.File, Entry: ce.Entry, Reason: ce.Reason, Err: cause}
}

// answerLimit bounds the child's answer, which the parent reads into
// memory: the rendered YAML is capped at MaxTotalSize, and the same objects
// as JSON take at most about twice that (JSON escapes some characters to six
// bytes where YAML needs two to four), plus the sources. An honest child
// that would pass it sends an ErrTooLarge error instead.
func answerLimit(opts Options) int64 {
	return 2*opts.MaxTotalSize + 1<<20
}

// Build renders opts in a child process, as Build does in this one: the
// same objects with the same sources, or an equivalent error (an *Error
// with the same File, Entry and Reason, for which errors.Is finds the same
// category). On top of Build's own errors:
//
//   - a child that runs out of its memory or CPU time gives an *Error of
//     category ErrTooLarge ("rendering used more than 768 MiB of memory",
//     naming the file the child read last; "rendering used more than 2m0s
//     of CPU"), never the one for the other (see explain);
//   - when ctx ends, the child is killed and the error wraps ctx.Err();
//   - a child that crashes otherwise gives an error with the end of its
//     stderr (a few KB at most).
func (iso Isolated) Build(ctx context.Context, opts Options) ([]Resource, error) {
	iso, opts, req, err := iso.request(opts)
	if err != nil {
		return nil, err
	}
	cancelled := func() error {
		return &Error{File: displayDir(opts.Path), Reason: "build cancelled: " + ctx.Err().Error(), Err: ctx.Err()}
	}
	if ctx.Err() != nil {
		return nil, cancelled()
	}
	run, err := iso.run(ctx, req, answerLimit(opts))
	if err != nil {
		return nil, err
	}
	switch {
	case ctx.Err() != nil:
		return nil, cancelled()
	case run.overflow:
		return nil, refusal(displayDir(opts.Path), "", ErrTooLarge, fmt.Sprintf("the renderer's answer passes %d bytes (twice MaxTotalSize and 1 MiB)", answerLimit(opts)))
	case run.err == nil:
		return decodeAnswer(run.stdout)
	}
	return nil, iso.failure(opts, run)
}

// request checks iso and opts, fills in their defaults and returns them
// with the request for the child.
func (iso Isolated) request(opts Options) (Isolated, Options, []byte, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return iso, opts, nil, err
	}
	if len(iso.Command) == 0 || iso.Command[0] == "" {
		return iso, opts, nil, errors.New("render: Isolated.Command is empty")
	}
	if iso.MemoryLimit < 0 || iso.CPULimit < 0 {
		return iso, opts, nil, fmt.Errorf("render: negative limit for the renderer (MemoryLimit %d, CPULimit %v)", iso.MemoryLimit, iso.CPULimit)
	}
	if iso.MemoryLimit == 0 {
		iso.MemoryLimit = DefaultMemoryLimit
	}
	if iso.CPULimit == 0 {
		iso.CPULimit = DefaultCPULimit
	}
	// The child works from "/", so the root must not depend on the
	// parent's working directory.
	if opts.Root, err = filepath.Abs(opts.Root); err != nil {
		return iso, opts, nil, fmt.Errorf("render: root %q: %w", opts.Root, err)
	}
	req, err := json.Marshal(childRequest{Protocol: childProtocol, Options: opts, MemoryLimit: iso.MemoryLimit, CPULimit: iso.CPULimit, ReportFD: reportFD})
	if err != nil {
		return iso, opts, nil, fmt.Errorf("render: encoding the request for the renderer: %w", err)
	}
	return iso, opts, req, nil
}

// childRun is what one run of the child left behind.
type childRun struct {
	stdout   []byte
	overflow bool  // the answer passed its limit; the child was killed
	err      error // from Wait: nil when the child exited with status 0
	state    *os.ProcessState
	stderr   *stderrTail
	report   *reportTail
}

// run starts the child with the request on its stdin and the report pipe
// as its descriptor reportFD, and waits for it, killing it when ctx ends
// or its answer passes limit.
func (iso Isolated) run(ctx context.Context, req []byte, limit int64) (*childRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reports, reportW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("render: a pipe for the renderer's reports: %w", err)
	}
	defer reports.Close()
	cmd := exec.CommandContext(ctx, iso.Command[0], iso.Command[1:]...)
	cmd.Env = childEnv(iso.Env)
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(req)
	out := &cappedBuffer{max: limit, over: cancel}
	cmd.Stdout = out
	tail := &stderrTail{}
	cmd.Stderr = tail
	cmd.ExtraFiles = []*os.File{reportW} // reportFD in the child
	cmd.SysProcAttr = childProcAttr()
	// Pipes stay open only as long as the child lives (it starts nothing),
	// but do not wait for them forever.
	cmd.WaitDelay = 5 * time.Second
	// The child's parent-death signal is tied to the thread that started
	// it: keep that thread for this goroutine until the child is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	_ = reportW.Close() // the child has its own copy now
	if err != nil {
		return nil, fmt.Errorf("render: starting the renderer %q: %w", iso.Command[0], err)
	}
	rep := &reportTail{}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(rep, reports)
		close(copied)
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(cmd.WaitDelay):
		_ = reports.Close() // unblocks the copy
		<-copied
	}
	return &childRun{stdout: out.buf.Bytes(), overflow: out.overflow, err: err, state: cmd.ProcessState, stderr: tail, report: rep}, nil
}

// childEnv is the child's environment: env without PATH.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name == "PATH" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// failure explains a child that did not exit cleanly: stopped by its
// memory or CPU limit, or crashed (see explain).
func (iso Isolated) failure(opts Options, run *childRun) error {
	f := exitFacts{
		where:       displayDir(opts.Path),
		lastFile:    run.report.lastFile,
		sawCPULimit: run.report.cpuLimit,
		outOfMemory: run.stderr.outOfMemory(),
		err:         run.err,
		stderr:      run.stderr.summary(),
	}
	if run.state != nil {
		f.killed = killed(run.state)
		f.cpu = run.state.UserTime() + run.state.SystemTime()
		f.peak = peakMemory(run.state)
	}
	return explain(iso.MemoryLimit, iso.CPULimit, f)
}

// cpuLimitSeconds is the CPU limit as the kernel applies it: whole seconds,
// rounded up.
func cpuLimitSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1) / time.Second * time.Second
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%d MiB", n>>20)
}

// decodeAnswer turns the child's answer into objects or the build's error.
// The objects are validated again: what crosses the pipe is checked as if
// it came from the repository itself.
func decodeAnswer(data []byte) ([]Resource, error) {
	var ans childAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		return nil, fmt.Errorf("render: the renderer's answer does not decode: %w", err)
	}
	if ans.Protocol != childProtocol {
		return nil, fmt.Errorf("render: the renderer speaks protocol %d, not %d (was the binary replaced?)", ans.Protocol, childProtocol)
	}
	if ans.Error != nil {
		return nil, ans.Error.decode()
	}
	out := make([]Resource, len(ans.Objects))
	for i, o := range ans.Objects {
		if o.Source < 0 || o.Source >= len(ans.Sources) {
			return nil, fmt.Errorf("render: the renderer's object %d names source %d of %d", i, o.Source, len(ans.Sources))
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.Object); err != nil {
			return nil, refusal(ans.Sources[o.Source], "", ErrInvalid, fmt.Sprintf("object %d: %v", i, err))
		}
		out[i] = Resource{Object: u, Source: ans.Sources[o.Source]}
	}
	if err := validate(out); err != nil {
		return nil, err
	}
	return out, nil
}

// cappedBuffer keeps up to max bytes; at the first write past that it
// drops the rest and calls over (which kills the child).
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int64
	over     func()
	overflow bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.overflow {
		return len(p), nil
	}
	if int64(c.buf.Len())+int64(len(p)) > c.max {
		c.overflow = true
		c.over()
		return len(p), nil
	}
	return c.buf.Write(p)
}

// Sizes of what the parent keeps of the child's stderr.
const (
	stderrTailSize  = 2048 // the end of it
	stderrLineLimit = 512  // the longest line kept whole when looking for a fatal error
)

// stderrTail keeps the end of the child's stderr, and the first line in
// which the Go runtime reports a fatal error or a panic (which comes
// before a goroutine dump that can run to megabytes).
type stderrTail struct {
	tail  []byte
	line  []byte // the line being written, up to stderrLineLimit
	fatal string
}

func (s *stderrTail) Write(p []byte) (int, error) {
	s.tail = append(s.tail, p...)
	if len(s.tail) > stderrTailSize {
		s.tail = append(s.tail[:0], s.tail[len(s.tail)-stderrTailSize:]...)
	}
	for _, c := range p {
		if c != '\n' {
			if len(s.line) < stderrLineLimit {
				s.line = append(s.line, c)
			}
			continue
		}
		if l := string(s.line); s.fatal == "" && (strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "panic: ")) {
			s.fatal = l
		}
		s.line = s.line[:0]
	}
	return len(p), nil
}

// outOfMemory reports whether the Go runtime said it ran out of memory:
// what it does when an allocation passes RLIMIT_DATA.
func (s *stderrTail) outOfMemory() bool {
	for _, text := range []string{s.fatal, string(s.tail)} {
		if strings.Contains(text, "out of memory") || strings.Contains(text, "cannot allocate memory") || strings.Contains(text, "errno=12") || strings.Contains(text, "errno: 12") {
			return true
		}
	}
	return false
}

// summary is the fatal line and the last lines of stderr, for an error
// message.
func (s *stderrTail) summary() string {
	tail := strings.TrimSpace(strings.ToValidUTF8(string(s.tail), "?"))
	if len(s.tail) == stderrTailSize {
		if i := strings.IndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:] // drop the partial first line
		}
		tail = "...\n" + tail
	}
	var b strings.Builder
	if s.fatal != "" && !strings.Contains(tail, s.fatal) {
		b.WriteString(": ")
		b.WriteString(strings.ToValidUTF8(s.fatal, "?"))
	}
	if tail != "" {
		b.WriteString("; its stderr ends with:\n")
		b.WriteString(tail)
	}
	return b.String()
}
