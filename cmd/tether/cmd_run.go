package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/metrics"
	"github.com/tether-gitops/tether/ui"
)

func (a *app) runCommand() *cobra.Command {
	var opts agent.Options
	var listen, webhookListen string
	var check bool
	var withUI bool
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

Endpoints on --listen: /healthz, /readyz, /status (JSON), /metrics, and the
read-only web page under /ui/ (authorised by Kubernetes RBAC; --ui=false
turns it off).
Webhooks on --webhook-listen: /hooks/github, /hooks/generic.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if opts.ConfigPath == "" {
				return usageError("--config is required")
			}
			if err := checkRunFlags(opts); err != nil {
				return err
			}
			// The configuration is checked before anything else (cluster
			// access, listeners), so its problems are what a bad start
			// reports.
			opts.ConfigLimits = config.Limits{RenderCPULimit: a.renderCPU}
			loaded, err := config.LoadWith(opts.ConfigPath, opts.ConfigLimits)
			if err != nil {
				return err
			}
			if check {
				fmt.Fprintf(a.stdout, "%s: valid, %d syncs\n", opts.ConfigPath, len(loaded.Syncs))
				return nil
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
			var page *ui.Server
			if withUI {
				if page, err = newUI(ag, clients, a.log); err != nil {
					return err
				}
			}
			return serve(cmd.Context(), a, ag, page, listen, webhookListen)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&opts.ConfigPath, "config", "", "configuration file (required); its folder is watched for changes")
	f.StringVar(&opts.DataDir, "data-dir", "/var/lib/tether", "folder for checkouts (an emptyDir in the cluster)")
	f.StringVar(&opts.Namespace, "namespace", "", "the agent's namespace, for its lease and events (default: $POD_NAMESPACE, else tether-system)")
	f.StringVar(&listen, "listen", ":8080", "address for /healthz, /readyz, /status, /metrics and the web page /ui/")
	f.BoolVar(&withUI, "ui", true, "serve the read-only web page under /ui/ on --listen (every request needs a Kubernetes token; see the README)")
	f.StringVar(&webhookListen, "webhook-listen", ":9292", "address for webhooks; empty turns them off")
	f.BoolVar(&opts.LeaderElect, "leader-elect", true, "hold a Lease so only one replica applies; off for a single process")
	f.StringVar(&opts.Identity, "leader-elect-id", "", "this process's identity in leader election (default: $POD_NAME, else host name and pid)")
	f.StringVar(&opts.LeaseName, "leader-elect-lease", "tether", "name of the Lease")
	f.DurationVar(&opts.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a lease lasts without renewal")
	f.DurationVar(&opts.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before giving up")
	f.DurationVar(&opts.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often to try to acquire or renew the lease")
	f.DurationVar(&opts.DeleteGrace, "delete-on-remove-grace", 30*time.Second, "how long a sync with deleteOnRemove must stay removed from the configuration before its objects are deleted")
	f.IntVar(&opts.Concurrency, "concurrency", 16, "parallel API requests per sync")
	f.BoolVar(&check, "check", false, "only validate the configuration file: print its problems and exit 1, or exit 0 (for CI)")
	return cmd
}

// serve runs the agent and its HTTP servers until ctx ends or a server
// fails, then stops the agent (its syncs, then the lease) and shuts the
// servers down gracefully.
func serve(ctx context.Context, a *app, ag *agent.Agent, page *ui.Server, listen, webhookListen string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var handler http.Handler = ag.Handler()
	if page != nil {
		mux := http.NewServeMux()
		mux.Handle(ui.Prefix, page.Handler())
		mux.Handle("/", handler)
		handler = mux
	}
	// No ReadTimeout on --listen: the page's event streams stay open. Idle
	// keep-alive connections are closed after a while.
	servers := []*http.Server{{Addr: listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	if page != nil {
		// The page's event streams never go idle: end them on shutdown.
		servers[0].RegisterOnShutdown(page.Close)
	}
	if webhookListen != "" {
		servers = append(servers, &http.Server{Addr: webhookListen, Handler: ag.WebhookHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute})
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

// uiCacheTTL is how long the web page keeps what it read from the cluster.
const uiCacheTTL = 3 * time.Second

// newUI builds the web page over the agent's status and the cluster, read
// with the agent's clients; who may see what is asked of the API server.
func newUI(ag *agent.Agent, clients *kube.Clients, log *slog.Logger) (*ui.Server, error) {
	return ui.New(ui.Options{
		Status:   ag.Status,
		Source:   ui.NewClusterSource(clients.Typed, clients.Dynamic, clients.Mapper, uiCacheTTL),
		Reviewer: ui.KubeReviewer{Client: clients.Typed},
		Extras:   agentExtras{},
		Log:      log.With("component", "ui"),
	})
}

// checkRunFlags refuses values of tether run's flags that cannot work,
// rather than silently replacing them with defaults.
func checkRunFlags(o agent.Options) error {
	if o.Concurrency < 1 {
		return usageError("--concurrency: %d is not a positive number", o.Concurrency)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--leader-elect-lease-duration", o.LeaseDuration},
		{"--leader-elect-renew-deadline", o.RenewDeadline},
		{"--leader-elect-retry-period", o.RetryPeriod},
		{"--delete-on-remove-grace", o.DeleteGrace},
	} {
		if d.v <= 0 {
			return usageError("%s: %v is not a positive duration", d.flag, d.v)
		}
	}
	if o.RenewDeadline >= o.LeaseDuration {
		return usageError("--leader-elect-renew-deadline (%v) must be shorter than --leader-elect-lease-duration (%v)", o.RenewDeadline, o.LeaseDuration)
	}
	// client-go's leader election wants the renew deadline above the retry
	// period with its jitter (1.2).
	if float64(o.RenewDeadline) <= 1.2*float64(o.RetryPeriod) {
		return usageError("--leader-elect-retry-period (%v) must be shorter than --leader-elect-renew-deadline (%v) divided by 1.2", o.RetryPeriod, o.RenewDeadline)
	}
	return nil
}

func defaultIdentity(getenv func(string) string) string {
	if pod := getenv("POD_NAME"); pod != "" {
		return pod
	}
	host, _ := os.Hostname()
	return host + "_" + strconv.Itoa(os.Getpid())
}
