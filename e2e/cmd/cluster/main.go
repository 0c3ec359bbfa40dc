// Command cluster runs the local control plane by hand:
//
//	go run ./e2e/cmd/cluster up [--dir DIR] [--audit]
//
// It prints the admin kubeconfig path and an export line, then runs until
// interrupted, and stops every process on the way out.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tether-gitops/tether/e2e/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "up" {
		return fmt.Errorf("usage: cluster up [--dir DIR] [--audit] [--nodes N]")
	}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "keep state and logs in DIR (default: a temporary folder, removed on exit)")
	audit := fs.Bool("audit", false, "write an API audit log (DIR/audit.log) to count requests per user")
	nodes := fs.Int("nodes", 1, "number of fake nodes")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Options{Dir: *dir, Audit: *audit, Nodes: *nodes, Log: stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Fprintf(stdout, "control plane running; state and logs in %s\n", c.Dir)
	fmt.Fprintf(stdout, "kubeconfig: %s\n", c.Kubeconfig)
	fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", c.Kubeconfig)
	if c.AuditLog != "" {
		fmt.Fprintf(stdout, "audit log: %s\n", c.AuditLog)
	}
	fmt.Fprintln(stdout, "press Ctrl-C to stop")
	<-ctx.Done()
	fmt.Fprintln(stderr, "stopping the control plane")
	return nil
}
