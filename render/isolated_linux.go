//go:build linux

package render

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// setHardLimits caps this process's memory and CPU time with the kernel's
// resource limits, with hard limits, so they cannot be raised again.
//
// Memory is RLIMIT_DATA, not RLIMIT_AS: a Go program reserves address
// space it never uses (a small one starts with a VmSize of 1.2 GB), so
// under an RLIMIT_AS of 768 MiB it cannot allocate at all, while
// RLIMIT_DATA counts the private writable mappings (heap arenas, stacks,
// runtime structures) and lets the same program allocate about 710 MiB of
// 768 (measured with Go 1.26 on Linux 6.18). An allocation past it makes
// the Go runtime exit with "fatal error: runtime: out of memory". Soft and
// hard limit are the same.
//
// CPU is RLIMIT_CPU in whole seconds, rounded up: the soft limit is the
// limit, at which the kernel sends SIGXCPU (which ServeChild catches, see
// cpuLimitSignal, and answers with a CPU-limit error), and the hard limit
// is cpuGrace later, where the kernel sends SIGKILL to a child that could
// not answer in time.
//
// The process also volunteers to be the first victim of the out-of-memory
// killer (oom_score_adj 1000), so that a pod short of memory loses the
// renderer, not the agent.
func setHardLimits(memory int64, cpu time.Duration) error {
	secs := uint64(cpuLimitSeconds(cpu) / time.Second)
	for _, l := range []struct {
		name      string
		resource  int
		soft, max uint64
	}{
		{"RLIMIT_DATA", syscall.RLIMIT_DATA, uint64(memory), uint64(memory)},
		{"RLIMIT_CPU", syscall.RLIMIT_CPU, secs, secs + uint64(cpuGrace/time.Second)},
	} {
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(l.resource, &cur); err != nil {
			return fmt.Errorf("getrlimit %s: %w", l.name, err)
		}
		// A hard limit can only go down.
		v := syscall.Rlimit{Cur: min(l.soft, cur.Max), Max: min(l.max, cur.Max)}
		if err := syscall.Setrlimit(l.resource, &v); err != nil {
			return fmt.Errorf("setrlimit %s %d/%d: %w", l.name, v.Cur, v.Max, err)
		}
	}
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0) // best effort
	return nil
}

// cpuLimitSignal returns a channel that receives SIGXCPU, the kernel's
// word that the CPU soft limit passed (the Go runtime ignores it unless
// asked for it), and a function that stops the delivery.
func cpuLimitSignal() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGXCPU)
	return ch, func() { signal.Stop(ch) }
}

// childProcAttr starts the child in its own process group (a Ctrl-C on the
// terminal goes to the agent, which kills the child itself) and has the
// kernel kill it if the agent dies first.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killed reports whether the child was killed by SIGKILL.
func killed(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// peakMemory is the child's peak resident memory.
func peakMemory(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10 // KiB on Linux
	}
	return 0
}
