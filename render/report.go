package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	gosync "sync"
	"time"
)

// The child tells the parent what it is doing through a pipe of its own
// (file descriptor reportFD in the child), one line per event, so that the
// parent can explain a child the kernel killed: which file it read last,
// and whether it saw its CPU limit pass. kustomize writes to stdout and
// stderr, and what it writes there can come from the repository; nothing
// but this package writes to the report pipe, so its lines can be trusted.
const (
	// reportFD is the report pipe's descriptor in the child: the first of
	// exec.Cmd.ExtraFiles.
	reportFD = 3
	// reportRead starts the line that names a file (quoted with
	// strconv.Quote) before the child reads it.
	reportRead = "read "
	// reportCPULimit is the line the child writes when the kernel says
	// (SIGXCPU) that its CPU soft limit passed.
	reportCPULimit = "cpu-limit"
	// reportLineLimit bounds a line the parent keeps.
	reportLineLimit = 4096
)

// cpuGrace is how much CPU time the child has between the soft CPU limit
// (SIGXCPU, after which it answers with a CPU-limit error and exits) and
// the hard limit, where the kernel kills it. Answering takes milliseconds;
// the hard limit is the backstop for a child that cannot.
const cpuGrace = 5 * time.Second

// HardCPULimit is the CPU time at which the kernel kills a render whose
// CPU limit is limit. Whoever gives renders a deadline (a sync's timeout)
// should allow longer, or a render that fails by the limit outlasts it
// (see Scheduler.Overrun).
func HardCPULimit(limit time.Duration) time.Duration { return limit + cpuGrace }

// childReport is the child's end of the report pipe; a nil one reports
// nothing.
type childReport struct {
	mu gosync.Mutex
	w  io.Writer
}

func (r *childReport) line(s string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = io.WriteString(r.w, s+"\n") // best effort: a report that fails changes no answer
}

// read says that the child is about to read file.
func (r *childReport) read(file string) { r.line(reportRead + strconv.Quote(file)) }

// cpuLimit says that the CPU soft limit passed.
func (r *childReport) cpuLimit() { r.line(reportCPULimit) }

// reportTail is the parent's end of the report pipe: it keeps the last
// file named and whether the CPU limit passed. It is written by one
// goroutine and read after that one is done.
type reportTail struct {
	line     []byte
	overlong bool // the line being written passed reportLineLimit
	lastFile string
	cpuLimit bool
}

func (r *reportTail) Write(p []byte) (int, error) {
	for _, c := range p {
		if c != '\n' {
			if len(r.line) < reportLineLimit {
				r.line = append(r.line, c)
			} else {
				r.overlong = true
			}
			continue
		}
		if !r.overlong {
			r.event(string(r.line))
		}
		r.line, r.overlong = r.line[:0], false
	}
	return len(p), nil
}

// event takes in one complete line.
func (r *reportTail) event(l string) {
	switch {
	case l == reportCPULimit:
		r.cpuLimit = true
	case strings.HasPrefix(l, reportRead):
		if f, err := strconv.Unquote(l[len(reportRead):]); err == nil {
			r.lastFile = f
		}
	}
}

// cpuLimitError is the error of a render stopped by its CPU limit; the
// child sends it when it sees SIGXCPU, the parent makes it when the kernel
// killed the child at the hard limit.
func cpuLimitError(where string, limit time.Duration) error {
	return refusal(where, "", ErrTooLarge, fmt.Sprintf("rendering used more than %v of CPU (the render CPU limit, tether --render-cpu-limit)", limit))
}

// exitFacts is what the parent knows about a child that did not answer.
type exitFacts struct {
	where       string        // the folder being rendered, for messages
	lastFile    string        // the last file the child said it read
	sawCPULimit bool          // the child reported SIGXCPU
	outOfMemory bool          // the Go runtime said it ran out of memory
	killed      bool          // SIGKILL ended the child
	cpu         time.Duration // the child's CPU time, user and system
	peak        int64         // the child's peak resident memory, bytes
	err         error         // from Wait
	stderr      string        // the end of its stderr, for a crash
}

// explain turns what is known about a child that did not answer into an
// error. Only the kernel sends SIGKILL to the child (the parent's own kills
// are told apart before this), for the CPU hard limit or the out-of-memory
// killer of the pod's cgroup: the child's report of SIGXCPU says which for
// sure. Without it (a child too stuck to answer) the CPU time decides, with
// a tolerance of a tenth of the limit, since the rusage the parent gets and
// the kernel's check of the limit need not agree to the second on a loaded
// machine: a child killed that close to its CPU limit is taken to have
// reached it, any other for the out-of-memory killer's.
func explain(memoryLimit int64, cpuLimit time.Duration, f exitFacts) error {
	memory := func(detail string) error {
		file, reason := f.where, fmt.Sprintf("rendering used more than %s of memory%s (the render memory limit, tether --render-memory-limit)", mib(memoryLimit), detail)
		if f.lastFile != "" {
			file, reason = f.lastFile, reason+"; this is the last file it read before it ran out (kustomize reads each file once, so it may have been working on one read earlier)"
		}
		return refusal(file, "", ErrTooLarge, reason)
	}
	switch {
	case f.sawCPULimit:
		return cpuLimitError(f.where, cpuLimit)
	case f.outOfMemory:
		return memory("")
	case f.killed && f.cpu >= cpuLimitSeconds(cpuLimit)*9/10:
		return cpuLimitError(f.where, cpuLimit)
	case f.killed:
		return memory(fmt.Sprintf(", or more than the pod had left: it was killed by the kernel after using %s", mib(f.peak)))
	}
	return &Error{File: f.where, Reason: fmt.Sprintf("the renderer failed (%v)%s", f.err, f.stderr), Err: f.err}
}
