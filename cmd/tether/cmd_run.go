package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/metrics"
)

func (a *app) runCommand() *cobra.Command {
	var opts agent.Options
	var listen, webhookListen string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the agent: follow the configured syncs until stopped",
		Long: `Run the agent: every sync in the configuration file is fetched, rendered,
applied and pruned in its own loop (interval with jitter, backoff on failure),
and reconciled at once on a webhook. The file is watched and hot-reloaded:
added syncs start, removed ones stop, changed ones restart, and a bad version
is rejected while the previous one keeps running.

With leader election (the default), replicas share a Lease and only the
leader applies; the others stand by. SIGTERM aborts the current reconcile
cleanly and releases the lease.

Endpoints on --listen: /healthz, /readyz, /status (JSON), /metrics.
Webhooks on --webhook-listen: /hooks/github, /hooks/generic.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if opts.ConfigPath == "" {
				return usageError("--config is required")
			}
			if opts.Namespace == "" {
				opts.Namespace = a.getenv("POD_NAMESPACE")
			}
			if opts.Namespace == "" {
				opts.Namespace = "tether-system"
			}
			if opts.Identity == "" {
				opts.Identity = defaultIdentity(a.getenv)
			}
			cfg, err := a.kube.RESTConfig(a.getenv)
			if err != nil {
				return err
			}
			opts.Version, opts.Getenv = version, a.getenv
			if opts.Render, err = a.renderer(); err != nil {
				return err
			}
			clients, err := kube.NewClients(cfg)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
				return fmt.Errorf("--data-dir: %w", err)
			}
			m := metrics.New()
			ag := agent.New(opts, clients, m, a.log)
			return serve(cmd.Context(), a, ag, listen, webhookListen)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&opts.ConfigPath, "config", "", "configuration file (required); its folder is watched for changes")
	f.StringVar(&opts.DataDir, "data-dir", "/var/lib/tether", "folder for checkouts (an emptyDir in the cluster)")
	f.StringVar(&opts.Namespace, "namespace", "", "the agent's namespace, for its lease and events (default: $POD_NAMESPACE, else tether-system)")
	f.StringVar(&listen, "listen", ":8080", "address for /healthz, /readyz, /status and /metrics")
	f.StringVar(&webhookListen, "webhook-listen", ":9292", "address for webhooks; empty turns them off")
	f.BoolVar(&opts.LeaderElect, "leader-elect", true, "hold a Lease so only one replica applies; off for a single process")
	f.StringVar(&opts.Identity, "leader-elect-id", "", "this process's identity in leader election (default: $POD_NAME, else host name and pid)")
	f.StringVar(&opts.LeaseName, "leader-elect-lease", "tether", "name of the Lease")
	f.DurationVar(&opts.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a lease lasts without renewal")
	f.DurationVar(&opts.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before giving up")
	f.DurationVar(&opts.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often to try to acquire or renew the lease")
	f.DurationVar(&opts.DeleteGrace, "delete-on-remove-grace", 30*time.Second, "how long a sync with deleteOnRemove must stay removed from the configuration before its objects are deleted")
	f.IntVar(&opts.Concurrency, "concurrency", 16, "parallel API requests per sync")
	return cmd
}

// serve runs the agent and its HTTP servers until ctx ends or a server
// fails, then stops the agent (its syncs, then the lease) and shuts the
// servers down gracefully.
func serve(ctx context.Context, a *app, ag *agent.Agent, listen, webhookListen string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	servers := []*http.Server{{Addr: listen, Handler: ag.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	if webhookListen != "" {
		servers = append(servers, &http.Server{Addr: webhookListen, Handler: ag.WebhookHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second})
	}
	serverErr := make(chan error, len(servers))
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", srv.Addr, err)
		}
		a.log.Info("listening", "address", ln.Addr().String())
		go func(srv *http.Server) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serverErr <- fmt.Errorf("serving %s: %w", srv.Addr, err)
			}
		}(srv)
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(ctx) }()
	var err error
	select {
	case err = <-agentDone:
	case err = <-serverErr:
		cancel()
		<-agentDone // the agent stops its syncs and releases the lease
	case <-ctx.Done():
		err = <-agentDone
	}
	shutdown, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdown)
	}
	a.log.Info("stopped")
	return err
}

func defaultIdentity(getenv func(string) string) string {
	if pod := getenv("POD_NAME"); pod != "" {
		return pod
	}
	host, _ := os.Hostname()
	return host + "_" + strconv.Itoa(os.Getpid())
}
