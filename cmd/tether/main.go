// Command tether is a GitOps sync agent for Kubernetes: it follows a git
// repository, renders the kustomize output at a path, applies it with
// server-side apply, prunes what it applied before and is gone now, and reports
// health and metrics.
//
// The CLI uses cobra (with pflag) rather than the standard flag package: users
// coming from kubectl and flux expect GNU-style flags that may follow
// positional arguments (`tether build ./app --namespace x`), `-n` shorthands
// and `tether help COMMAND`, which the standard package does not offer.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/tether-gitops/tether/render"
)

// defaultGCPercent is the garbage collector's target (GOGC) unless the
// environment sets one: the heap may grow by half its live size between
// collections instead of doubling. tether keeps every object of a sync in
// memory while it reconciles, so this is most of its peak: at 5,000
// objects `sync --once` peaked at 174 MiB with Go's default of 100 and
// 139 MiB with 50, in the same time and within 5% of the CPU (2 cores).
const defaultGCPercent = 50

// Set by the linker: -X main.version=... -X main.commit=... -X main.date=...
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == renderChildCommand {
		// The confined child that renders a revision (render.Isolated):
		// no flags, no logging, JSON in and out.
		if err := render.ServeChild(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "tether "+renderChildCommand+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second Ctrl-C ends the process at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(report(err, os.Stderr))
}

// report prints err (unless it carries no message) and returns the exit code.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.err == nil {
		return ee.code
	}
	fmt.Fprintln(stderr, "tether:", err)
	return exitCode(err)
}

// Exit codes, as in kubectl: 1 for a failure (or, for diff, "there are
// changes"), 2 for bad usage.
const (
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries a specific exit code. A nil err means "exit with code,
// print nothing".
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// asCode2 makes every error of a command whose exit code 1 means something
// else ("there are changes", "a sync is failing") exit with 2.
func asCode2(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitUsage, err: err}
}

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}
