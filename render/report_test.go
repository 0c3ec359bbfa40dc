package render

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The report pipe's lines are read back whatever the file names hold, and
// nothing else is taken for an event.
func TestReportTail(t *testing.T) {
	var buf strings.Builder
	child := &childReport{w: &buf}
	child.read("app/a.yaml")
	child.read("evil\ncpu-limit\n.yaml") // a file name is data, never an event
	parent := &reportTail{}
	// Written in pieces, as a pipe delivers it.
	data := buf.String()
	for len(data) > 0 {
		n := min(len(data), 7)
		parent.Write([]byte(data[:n]))
		data = data[n:]
	}
	if parent.cpuLimit || parent.lastFile != "evil\ncpu-limit\n.yaml" {
		t.Fatalf("after two reads: cpuLimit %v, last file %q", parent.cpuLimit, parent.lastFile)
	}
	parent.Write([]byte("read " + strings.Repeat("x", reportLineLimit) + "\nnot an event\n"))
	if parent.lastFile != "evil\ncpu-limit\n.yaml" {
		t.Errorf("an overlong or unknown line changed the last file to %q", parent.lastFile)
	}
	buf.Reset()
	child.cpuLimit()
	parent.Write([]byte(buf.String()))
	if !parent.cpuLimit {
		t.Error("the CPU limit was not seen")
	}
	var none *childReport
	none.read("x") // a child without a report pipe reports nothing, and does not fail
}

// What the parent makes of a child that did not answer: the CPU limit only
// when the child saw SIGXCPU or used (nearly) its whole CPU limit, memory
// otherwise, naming the file the child read last.
func TestExplain(t *testing.T) {
	const mem = 768 << 20
	exit1 := errors.New("exit status 1")
	for _, tc := range []struct {
		name  string
		facts exitFacts
		want  string // the whole message
	}{
		{
			name:  "SIGXCPU seen, then killed at the hard limit",
			facts: exitFacts{where: ".", lastFile: "a.yaml", sawCPULimit: true, killed: true, cpu: 125 * time.Second},
			want:  ".: size limit exceeded: rendering used more than 2m0s of CPU (the render CPU limit, tether --render-cpu-limit)",
		},
		{
			name:  "killed at the hard limit on a loaded machine, accounting a little short",
			facts: exitFacts{where: "app", killed: true, cpu: 118 * time.Second},
			want:  "app: size limit exceeded: rendering used more than 2m0s of CPU (the render CPU limit, tether --render-cpu-limit)",
		},
		{
			name:  "killed early: the out-of-memory killer",
			facts: exitFacts{where: "app", lastFile: "app/big.yaml", killed: true, cpu: 3 * time.Second, peak: 299 << 20},
			want:  "app/big.yaml: size limit exceeded: rendering used more than 768 MiB of memory, or more than the pod had left: it was killed by the kernel after using 299 MiB (the render memory limit, tether --render-memory-limit); this is the last file it read before it ran out (kustomize reads each file once, so it may have been working on one read earlier)",
		},
		{
			name:  "the Go runtime ran out of memory",
			facts: exitFacts{where: "app", lastFile: "app/big.yaml", outOfMemory: true, cpu: 100 * time.Second, err: exit1},
			want:  "app/big.yaml: size limit exceeded: rendering used more than 768 MiB of memory (the render memory limit, tether --render-memory-limit); this is the last file it read before it ran out (kustomize reads each file once, so it may have been working on one read earlier)",
		},
		{
			name:  "out of memory before reading anything",
			facts: exitFacts{where: "app", outOfMemory: true, err: exit1},
			want:  "app: size limit exceeded: rendering used more than 768 MiB of memory (the render memory limit, tether --render-memory-limit)",
		},
		{
			name:  "a crash",
			facts: exitFacts{where: "app", lastFile: "app/a.yaml", err: exit1, stderr: ": panic: boom"},
			want:  "app: the renderer failed (exit status 1): panic: boom",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := explain(mem, 2*time.Minute, tc.facts)
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
			if limit := strings.Contains(tc.want, "limit exceeded"); limit != errors.Is(err, ErrTooLarge) {
				t.Errorf("errors.Is(ErrTooLarge) = %v", !limit)
			}
		})
	}
}
