package render

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// childEnvVar makes the test binary a renderer child: "serve" runs
// ServeChild, "probe" confines itself and reports what it can still do
// (see probeChild).
const childEnvVar = "TETHER_RENDER_TEST_CHILD"

// TestMain lets the test binary serve as the child program of Isolated, so
// that the tests need no other binary.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnvVar) {
	case "serve":
		if err := ServeChild(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "probe":
		if err := probeChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testIsolated returns an Isolated that runs this test binary as the
// child.
func testIsolated(t *testing.T) Isolated {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The race detector makes a process wait a second at exit unless told
	// otherwise. PATH is there to be removed.
	return Isolated{Command: []string{exe}, Env: []string{childEnvVar + "=serve", "GORACE=atexit_sleep_ms=0", "PATH=/usr/bin:/bin"}}
}

// probeRequest is what a probe child is asked to try.
type probeRequest struct {
	MemoryLimit int64
	CPULimit    time.Duration
	URL         string // a server to try to reach
}

// probeReport is what a probe child could and could not do once confined.
type probeReport struct {
	PATH                  string
	DefaultClient, Client string // errors of http.Get and (&http.Client{}).Get
	Lookup                string // error of a DNS lookup
	LookPath, Exec        string // errors of exec.LookPath("git") and running git
	Data, CPU             [2]uint64
}

// probeChild confines the process as ServeChild does, then tries to reach
// the network and to run git, and reports how that went.
func probeChild(stdin io.Reader, stdout io.Writer) error {
	var req probeRequest
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		return err
	}
	if err := confine(req.MemoryLimit, req.CPULimit); err != nil {
		return err
	}
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	var rep probeReport
	rep.PATH = os.Getenv("PATH")
	resp, err := http.Get(req.URL)
	if err == nil {
		resp.Body.Close()
		err = errors.New("connected")
	}
	rep.DefaultClient = errText(err)
	resp, err = (&http.Client{}).Get(req.URL)
	if err == nil {
		resp.Body.Close()
		err = errors.New("connected")
	}
	rep.Client = errText(err)
	_, err = net.LookupHost("tether-render-probe.example.com")
	rep.Lookup = errText(err)
	_, err = exec.LookPath("git")
	rep.LookPath = errText(err)
	rep.Exec = errText(exec.Command("git", "version").Run())
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_DATA, &rl); err != nil {
		return err
	}
	rep.Data = [2]uint64{rl.Cur, rl.Max}
	if err := syscall.Getrlimit(syscall.RLIMIT_CPU, &rl); err != nil {
		return err
	}
	rep.CPU = [2]uint64{rl.Cur, rl.Max}
	return json.NewEncoder(stdout).Encode(rep)
}
