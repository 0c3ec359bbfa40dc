// Command demo is `make demo`: it starts a local control plane and a git
// server, pushes the example web app to the git server, syncs it into the
// cluster and shows it running. On a terminal it then keeps everything
// running until Ctrl-C so you can look around; otherwise (CI) it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/tether-gitops/tether/e2e/cluster"
	"github.com/tether-gitops/tether/e2e/gitserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}

type demo struct {
	bin      string
	examples string
	out      io.Writer
	cluster  *cluster.Cluster
	git      *gitserver.Server
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin-dir", "bin", "folder with tether and the control plane binaries")
	examples := fs.String("examples", "examples", "folder with the example app")
	keep := fs.String("keep", "auto", "keep running until Ctrl-C: yes, no, or auto (yes on a terminal outside CI)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}
	d := &demo{bin: bin, examples: *examples, out: stdout}

	d.step("starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
	d.cluster, err = cluster.Start(ctx, cluster.Options{BinDir: bin, Log: stdout})
	if err != nil {
		return err
	}
	defer d.cluster.Stop()

	d.step("starting a git server and pushing the example app")
	d.git, err = gitserver.Start(gitserver.Options{})
	if err != nil {
		return err
	}
	defer d.git.Close()
	repo, err := d.git.CreateRepo("webapp")
	if err != nil {
		return err
	}
	sha, err := repo.CopyDir("webapp 1.0.0", filepath.Join(d.examples, "webapp"), ".")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s at %s\n", repo.URL, sha[:12])

	// Stand-in until tether's sync lands: kubectl applies the dev overlay of a
	// checkout of the pushed commit.
	d.step("applying overlays/dev (stand-in: kubectl apply --server-side -k)")
	checkout := filepath.Join(d.cluster.Dir, "checkout")
	if err := d.cmd(ctx, "git", "clone", "--quiet", "--depth", "1", repo.URL, checkout); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "apply", "--server-side", "-k", filepath.Join(checkout, "overlays", "dev")); err != nil {
		return err
	}

	d.step("waiting for the app to become available")
	if err := d.kubectl(ctx, "-n", "webapp-dev", "rollout", "status", "deployment/webapp", "--timeout", "2m"); err != nil {
		return err
	}
	d.step("the app in the cluster")
	if err := d.kubectl(ctx, "-n", "webapp-dev", "get", "deployment,replicaset,pod,service,ingress,hpa,configmap", "-o", "wide"); err != nil {
		return err
	}

	if !d.keepRunning(*keep) {
		d.step("done; stopping the control plane and the git server")
		return nil
	}
	d.step("everything keeps running until you press Ctrl-C")
	fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", d.cluster.Kubeconfig)
	fmt.Fprintf(stdout, "git clone %s\n", repo.URL)
	<-ctx.Done()
	return nil
}

func (d *demo) step(msg string) {
	fmt.Fprintf(d.out, "\n==> %s\n", msg)
}

func (d *demo) kubectl(ctx context.Context, args ...string) error {
	return d.cmd(ctx, filepath.Join(d.bin, "kubectl"), append([]string{"--kubeconfig", d.cluster.Kubeconfig}, args...)...)
}

func (d *demo) cmd(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) keepRunning(keep string) bool {
	switch keep {
	case "yes":
		return true
	case "no":
		return false
	}
	if os.Getenv("CI") != "" {
		return false
	}
	return term.IsTerminal(int(os.Stdin.Fd()))
}
