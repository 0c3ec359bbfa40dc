//go:build !linux

package render

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// setHardLimits refuses: the limits of an isolated build are implemented
// for Linux only, and a renderer without them is not isolated.
func setHardLimits(int64, time.Duration) error {
	return errors.New("isolated rendering needs Linux (RLIMIT_DATA and RLIMIT_CPU)")
}

// cpuLimitSignal never fires outside Linux (setHardLimits refuses first).
func cpuLimitSignal() (<-chan os.Signal, func()) { return nil, func() {} }

// childProcAttr has nothing to add outside Linux.
func childProcAttr() *syscall.SysProcAttr { return nil }

// killed reports whether the child was killed by a signal.
func killed(ps *os.ProcessState) bool { return !ps.Exited() }

// peakMemory is unknown outside Linux.
func peakMemory(*os.ProcessState) int64 { return 0 }
