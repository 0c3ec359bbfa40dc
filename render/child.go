package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"
)

// errNoNetwork is what every network connection of the renderer fails
// with.
var errNoNetwork = errors.New("network access is not allowed while rendering")

// ServeChild is the child's side of Isolated.Build: it reads the request
// from stdin, confines its own process (hard memory and CPU limits, no
// network, no programs to run), builds, and writes the objects or the
// build's error to stdout. When the kernel signals that the CPU limit
// passed (SIGXCPU, at the soft limit), it stops waiting for the build and
// answers with a CPU-limit error at once. It tells the parent each file
// before reading it, and the CPU limit, on the report pipe the request
// names (see report.go). A build that fails is an answer, not an error:
// ServeChild returns an error only when it cannot read the request, confine
// itself or write the answer, and the caller should then print it to
// stderr and exit with a non-zero status.
//
// The confinement is for the whole process and cannot be undone: call
// ServeChild only in a process started for it (tether's hidden "__render"
// command), first thing, and exit when it returns.
func ServeChild(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	req, err := readRequest(stdin)
	if err != nil {
		return err
	}
	// Asked for before the limits apply, so no SIGXCPU can be missed.
	cpuLimit, stopSignals := cpuLimitSignal()
	defer stopSignals()
	if err := confine(req.MemoryLimit, req.CPULimit); err != nil {
		return fmt.Errorf("render: confining the renderer: %w", err)
	}
	if f, ok := stdout.(*os.File); ok && f == os.Stdout {
		// kustomize has debug printers that write to os.Stdout; they must
		// not corrupt the answer.
		os.Stdout = os.Stderr
	}
	var report *childReport
	if req.ReportFD > 0 {
		report = &childReport{w: os.NewFile(uintptr(req.ReportFD), "render-report")}
	}
	type result struct {
		rs  []Resource
		err error
	}
	done := make(chan result, 1)
	go func() {
		rs, err := buildReporting(ctx, req.Options, report.read)
		done <- result{rs, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-cpuLimit:
		report.cpuLimit()
		select {
		case res = <-done: // finished just in time
		default:
			// kustomize cannot be interrupted; the process ends when
			// ServeChild returns.
			res.err = cpuLimitError(displayDir(req.Options.Path), req.CPULimit)
		}
	}
	answer, err := encodeAnswer(req.Options, res.rs, res.err)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(answer); err != nil {
		return fmt.Errorf("render: writing the answer: %w", err)
	}
	return nil
}

// readRequest reads and checks the parent's request.
func readRequest(stdin io.Reader) (*childRequest, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxRequest+1))
	if err != nil {
		return nil, fmt.Errorf("render: reading the request: %w", err)
	}
	if len(data) > maxRequest {
		return nil, fmt.Errorf("render: the request passes %d bytes", maxRequest)
	}
	var req childRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("render: decoding the request: %w", err)
	}
	if req.Protocol != childProtocol {
		return nil, fmt.Errorf("render: the request is for protocol %d, not %d (was the binary replaced?)", req.Protocol, childProtocol)
	}
	if req.MemoryLimit <= 0 || req.CPULimit <= 0 {
		return nil, fmt.Errorf("render: the request has no limits (memory %d, CPU %v)", req.MemoryLimit, req.CPULimit)
	}
	return &req, nil
}

// confine applies the limits to this process and cuts it off from the
// network and from other programs. It changes process-wide state that
// kustomize reads (http.DefaultTransport, which its loader's &http.Client{}
// uses; PATH, where its git cloner looks for git), which is why only a
// process started to render may call it.
func confine(memory int64, cpu time.Duration) error {
	if err := setHardLimits(memory, cpu); err != nil {
		return err
	}
	// A soft target below the hard limit makes the collector work harder
	// before an allocation fails outright.
	debug.SetMemoryLimit(memory / 4 * 3)
	refuse := func(_ context.Context, network, addr string) (net.Conn, error) {
		return nil, fmt.Errorf("dial %s %s: %w", network, addr, errNoNetwork)
	}
	http.DefaultTransport = &http.Transport{DialContext: refuse, DialTLSContext: refuse}
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: refuse}
	if err := os.Unsetenv("PATH"); err != nil {
		return err
	}
	return nil
}

// encodeAnswer is the child's answer for a build's result; one that would
// pass answerLimit becomes an ErrTooLarge error.
func encodeAnswer(opts Options, rs []Resource, buildErr error) ([]byte, error) {
	ans := childAnswer{Protocol: childProtocol}
	if buildErr != nil {
		ans.Error = encodeError(buildErr)
	} else {
		index := map[string]int{}
		ans.Objects = make([]childObject, len(rs))
		for i, r := range rs {
			n, ok := index[r.Source]
			if !ok {
				n = len(ans.Sources)
				index[r.Source] = n
				ans.Sources = append(ans.Sources, r.Source)
			}
			j, err := marshalJSON(r.Object.Object)
			if err != nil {
				ans.Objects, ans.Sources = nil, nil
				ans.Error = encodeError(&Error{File: r.Source, Entry: objectName(r.Object), Reason: "converting to JSON: " + err.Error(), Err: err})
				break
			}
			ans.Objects[i] = childObject{Source: n, Object: j}
		}
	}
	data, err := marshalJSON(ans)
	if err != nil {
		return nil, fmt.Errorf("render: encoding the answer: %w", err)
	}
	if opts, derr := opts.withDefaults(); derr == nil && int64(len(data)) > answerLimit(opts) {
		tooLarge := refusal(displayDir(opts.Path), "", ErrTooLarge, fmt.Sprintf("the rendered objects take %d bytes as JSON, more than %d (twice MaxTotalSize and 1 MiB)", len(data), answerLimit(opts)))
		return marshalJSON(childAnswer{Protocol: childProtocol, Error: encodeError(tooLarge)})
	}
	return data, nil
}

// marshalJSON is json.Marshal without HTML escaping ("<" stays one byte).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
