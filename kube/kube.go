// Package kube connects tether to a Kubernetes API server: it loads a
// kubeconfig the way kubectl does (flags, KUBECONFIG, ~/.kube/config, then
// in-cluster), builds the clients the other packages use and counts every
// request by verb, so tests can prove a sync wrote nothing and the agent can
// export request metrics.
package kube

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// Flags are the kubeconfig flags every command that talks to a cluster shares.
type Flags struct {
	// Kubeconfig is an explicit kubeconfig path (--kubeconfig); it wins over
	// KUBECONFIG and the default path.
	Kubeconfig string
	// Context selects a kubeconfig context (--context).
	Context string
	// QPS limits requests per second on the client side; zero or less turns
	// client-side throttling off and leaves it to the server's priority and
	// fairness queues.
	QPS float32
	// Burst is the client-side burst when QPS is positive.
	Burst int
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "path to a kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	fs.StringVar(&f.Context, "context", "", "kubeconfig context to use (default: the current context)")
	fs.Float32Var(&f.QPS, "kube-api-qps", -1, "client-side limit of API requests per second; <= 0 leaves throttling to the API server's priority and fairness")
	fs.IntVar(&f.Burst, "kube-api-burst", 100, "client-side burst of API requests when --kube-api-qps is positive")
}

// ClientConfig returns the kubeconfig loader for these flags. getenv supplies
// KUBECONFIG and HOME, so callers (and tests) control the environment.
func (f *Flags) ClientConfig(getenv func(string) string) clientcmd.ClientConfig {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: f.Kubeconfig}
	if env := getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		rules.Precedence = filepath.SplitList(env)
	} else if home := getenv("HOME"); home != "" {
		rules.Precedence = []string{filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)}
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.Context}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// RESTConfig loads the REST config for these flags, falling back to the
// in-cluster config when no kubeconfig is found.
func (f *Flags) RESTConfig(getenv func(string) string) (*rest.Config, error) {
	cfg, err := f.ClientConfig(getenv).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("no kubeconfig found (set --kubeconfig or KUBECONFIG, or run in a cluster)")
		}
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = f.QPS, f.Burst
	if cfg.QPS <= 0 {
		// client-go treats 0 as "use the default of 5"; a negative value
		// disables its token bucket.
		cfg.QPS = -1
	}
	cfg.UserAgent = "tether"
	return cfg, nil
}

// Namespace is the namespace of the selected kubeconfig context, or
// "default".
func (f *Flags) Namespace(getenv func(string) string) string {
	ns, _, err := f.ClientConfig(getenv).Namespace()
	if err != nil || strings.TrimSpace(ns) == "" {
		return "default"
	}
	return ns
}

// Clients are the API clients tether uses, all sharing one request counter.
type Clients struct {
	// Config is the REST config the clients were built from, with the
	// counting transport installed.
	Config *rest.Config
	// Dynamic reads and writes any object.
	Dynamic dynamic.Interface
	// Typed is the typed clientset, for events, leases and tokens.
	Typed kubernetes.Interface
	// Discovery is a cached discovery client; Mapper invalidates it.
	Discovery discovery.CachedDiscoveryInterface
	// Mapper maps kinds to resources; Reset it after CRDs change.
	Mapper meta.ResettableRESTMapper
	// Raw sends requests whose answers need no decoding (a write whose
	// response body nobody reads): decoding a response into an
	// unstructured object costs more CPU than sending the request.
	Raw rest.Interface
	// Requests counts every request the clients sent.
	Requests *RequestCounter
}

// NewClients builds clients from cfg and installs a request counter on them.
func NewClients(cfg *rest.Config) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	counter := NewRequestCounter()
	cfg.Wrap(counter.Wrap)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("clientset: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(disco)
	rawCfg := rest.CopyConfig(cfg)
	rawCfg.GroupVersion = &schema.GroupVersion{}
	rawCfg.APIPath = "/"
	rawCfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	raw, err := rest.UnversionedRESTClientFor(rawCfg)
	if err != nil {
		return nil, fmt.Errorf("REST client: %w", err)
	}
	return &Clients{
		Raw:       raw,
		Config:    cfg,
		Dynamic:   dyn,
		Typed:     typed,
		Discovery: cached,
		Mapper:    restmapper.NewDeferredDiscoveryRESTMapper(cached),
		Requests:  counter,
	}, nil
}
