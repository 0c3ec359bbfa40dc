// Package cluster runs a real Kubernetes control plane as plain child
// processes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok (which plays the kubelet of a fake node, so Deployments and
// StatefulSets become Ready without containers). The binaries are built from
// Go modules into the repository's bin/ folder by `make tools`.
//
// Every process listens on a free loopback port and keeps its state in a
// temporary folder; Stop ends them all, and the kernel kills them if the
// process that started them dies first.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Binaries the control plane needs in BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}

// FakeNodeAnnotation marks the nodes kwok manages.
const FakeNodeAnnotation = "kwok.x-k8s.io/node"

// Options configure Start. The zero value works inside the repository after
// `make tools`.
type Options struct {
	// BinDir holds the binaries; default: $TETHER_BIN_DIR, else bin/ at the
	// root of the repository containing the working directory.
	BinDir string
	// Dir holds state and logs; default: a new temporary folder, removed
	// by Stop. A given Dir is kept.
	Dir string
	// Log receives progress lines; default: discarded.
	Log io.Writer
	// Audit makes the API server write a JSON audit log (Cluster.AuditLog)
	// with one event per request at level Metadata, for counting writes.
	Audit bool
	// Nodes is the number of fake nodes; default 1.
	Nodes int
}

// Cluster is a running control plane.
type Cluster struct {
	// Config is an admin REST config (a static token in system:masters).
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	// Dir holds state, certificates, kubeconfigs and logs.
	Dir string
	// AuditLog is the audit log path when Options.Audit was set.
	AuditLog string
	// Client is an admin clientset.
	Client kubernetes.Interface

	server   string
	caData   []byte
	procs    []*process
	keepDir  bool
	stopOnce sync.Once
	log      io.Writer
}

// Start builds and starts a control plane and waits until it is ready: the
// API server answers /readyz, the fake nodes are Ready and the default
// ServiceAccount exists. On failure it stops what it started and returns an
// error naming the process that failed with its last log lines.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	binDir, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tether-cluster-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, keepDir: opts.Dir != "", log: opts.Log}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	started := time.Now()
	bin := func(name string) string { return filepath.Join(binDir, name) }

	// etcd
	etcdClient, etcdPeer := freePort(), freePort()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	etcd, err := c.start("etcd", bin("etcd"), []string{
		"--name", "default",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default=" + peerURL,
		"--unsafe-no-fsync", // test data: durability is not wanted, speed is
		"--log-level", "warn",
	}, nil)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil, 30*time.Second); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Log, "etcd up at %s (%s)\n", etcdURL, time.Since(started).Round(time.Millisecond))

	// kube-apiserver
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return nil, err
	}
	saKey := filepath.Join(pki, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return nil, err
	}
	token := randomToken()
	tokenFile := filepath.Join(pki, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	port := freePort()
	c.server = fmt.Sprintf("https://127.0.0.1:%d", port)
	args := []string{
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--cert-dir", pki,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey,
		"--token-auth-file", tokenFile,
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--allow-privileged",
		"--profiling=false",
	}
	if opts.Audit {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return nil, err
		}
		c.AuditLog = filepath.Join(dir, "audit.log")
		args = append(args,
			"--audit-policy-file", policy,
			"--audit-log-path", c.AuditLog,
			"--audit-log-format", "json",
			"--audit-log-mode", "blocking",
			"--audit-log-maxsize", "0",
		)
	}
	apiserver, err := c.start("kube-apiserver", bin("kube-apiserver"), args, nil)
	if err != nil {
		return nil, err
	}
	if err := waitFile(ctx, apiserver, filepath.Join(pki, "apiserver.crt"), 30*time.Second); err != nil {
		return nil, err
	}
	if c.caData, err = os.ReadFile(filepath.Join(pki, "apiserver.crt")); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{
		Host:            c.server,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caData},
		QPS:             -1,
	}
	if err := waitHTTP(ctx, apiserver, c.server+"/readyz", c.Config, 60*time.Second); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Log, "kube-apiserver up at %s (%s)\n", c.server, time.Since(started).Round(time.Millisecond))
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := c.writeKubeconfig(c.Kubeconfig, "admin", token, ""); err != nil {
		return nil, err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}

	// controllers, scheduler and the fake kubelet
	if _, err := c.start("kube-controller-manager", bin("kube-controller-manager"), []string{
		"--kubeconfig", c.Kubeconfig,
		"--controllers", "*,-serviceaccount-token",
		"--leader-elect=false",
		"--root-ca-file", filepath.Join(pki, "apiserver.crt"),
		"--service-account-private-key-file", saKey,
		"--secure-port", "0",
		"--concurrent-deployment-syncs", "10",
		// kwok renews the fake nodes' leases; on a loaded 2-core machine it
		// can fall behind the default 50 s, and then the node lifecycle
		// controller marks every pod NotReady and kwok does not mark them
		// Ready again. Fake nodes never really fail, so be patient.
		"--node-monitor-grace-period", "10m",
	}, nil); err != nil {
		return nil, err
	}
	if _, err := c.start("kube-scheduler", bin("kube-scheduler"), []string{
		"--kubeconfig", c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port", "0",
	}, nil); err != nil {
		return nil, err
	}
	kwok, err := c.start("kwok", bin("kwok"), []string{
		"--kubeconfig", c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector", FakeNodeAnnotation + "=fake",
		"--cidr", "10.0.0.1/24",
		"--node-ip", "10.0.0.1",
		"--server-address", fmt.Sprintf("127.0.0.1:%d", freePort()),
	}, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i < opts.Nodes; i++ {
		if err := c.createNode(ctx, fmt.Sprintf("kwok-node-%d", i)); err != nil {
			return nil, err
		}
	}
	if err := c.waitReady(ctx, kwok, opts.Nodes, 60*time.Second); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Log, "control plane ready in %s\n", time.Since(started).Round(time.Millisecond))
	return c, nil
}

// Stop ends every process (SIGTERM, then SIGKILL after a grace period), in
// the reverse order of starting, and removes the state folder unless it was
// given in Options. It is safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(10 * time.Second)
		}
		if !c.keepDir && c.Dir != "" {
			_ = os.RemoveAll(c.Dir)
		}
	})
}

// RestartAPIServer stops kube-apiserver and starts it again with the same
// flags, port, certificates and etcd, as an upgrade or a crash would: every
// watch breaks and clients must resume or relist. It returns once the new
// one is ready.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	var old *process
	var at int
	for i, p := range c.procs {
		if p.name == "kube-apiserver" {
			old, at = p, i
		}
	}
	if old == nil {
		return errors.New("no kube-apiserver to restart")
	}
	old.stop(10 * time.Second)
	// Keep the first run's log: the new one goes to a file of its own.
	p, err := startProcess(c.Dir, "kube-apiserver-restarted", old.cmd.Path, old.cmd.Args[1:], nil)
	if err != nil {
		return err
	}
	p.name = "kube-apiserver"
	c.procs[at] = p
	return waitHTTP(ctx, p, c.server+"/readyz", c.Config, 60*time.Second)
}

// PIDs lists the process ids of the control plane's processes.
func (c *Cluster) PIDs() map[string]int {
	out := map[string]int{}
	for _, p := range c.procs {
		out[p.name] = p.cmd.Process.Pid
	}
	return out
}

// Alive reports whether a process with this pid is still running.
func Alive(pid int) bool { return alive(pid) }

// Failed returns an error for the first process that has exited, with its
// last log lines, or nil while all run.
func (c *Cluster) Failed() error {
	for _, p := range c.procs {
		if p.exited() {
			return p.failure("control plane process ended")
		}
	}
	return nil
}

// Logs returns the last lines each process logged, for test failure output.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.name, p.logPath, p.tail.lastLines(lines))
	}
	return b.String()
}

// ServiceAccount is a ServiceAccount's credentials.
type ServiceAccount struct {
	Namespace, Name string
	// Token is a bound token from the TokenRequest API.
	Token string
	// Config is a REST config that authenticates with Token.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file that uses Token.
	Kubeconfig string
}

// ServiceAccount creates the namespace and ServiceAccount when missing,
// mints a token for it (valid for ttl) and writes a kubeconfig for it. Bind
// it to roles to give it rights: it has none by itself.
func (c *Cluster) ServiceAccount(ctx context.Context, namespace, name string, ttl time.Duration) (*ServiceAccount, error) {
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating ServiceAccount %s/%s: %w", namespace, name, err)
	}
	seconds := int64(ttl / time.Second)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	sa := &ServiceAccount{Namespace: namespace, Name: name, Token: tr.Status.Token}
	sa.Config = &rest.Config{
		Host:            c.server,
		BearerToken:     sa.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caData},
		QPS:             -1,
	}
	sa.Kubeconfig = filepath.Join(c.Dir, fmt.Sprintf("sa-%s-%s.kubeconfig", namespace, name))
	if err := c.writeKubeconfig(sa.Kubeconfig, "system:serviceaccount:"+namespace+":"+name, sa.Token, namespace); err != nil {
		return nil, err
	}
	return sa, nil
}

func (c *Cluster) writeKubeconfig(path, user, token, namespace string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.server, CertificateAuthorityData: c.caData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}

func (c *Cluster) start(name, bin string, args, env []string) (*process, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make tools`)", name, err)
	}
	p, err := startProcess(c.Dir, name, bin, args, env)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

func (c *Cluster) createNode(ctx context.Context, name string) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{FakeNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating fake node %s: %w", name, err)
	}
	return nil
}

// waitReady waits for the nodes to be Ready and the default ServiceAccount
// (made by the controller manager) to exist.
func (c *Cluster) waitReady(ctx context.Context, kwok *process, nodes int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := c.Failed(); err != nil {
			return err
		}
		ready := 0
		if list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
			for _, n := range list.Items {
				for _, cond := range n.Status.Conditions {
					if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		_, saErr := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if ready >= nodes && saErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			if ready < nodes {
				return kwok.failure(fmt.Sprintf("%d of %d fake nodes Ready after %s", ready, nodes, timeout))
			}
			return c.procByName("kube-controller-manager").failure("no default ServiceAccount after " + timeout.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) procByName(name string) *process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return c.procs[len(c.procs)-1]
}

// waitHTTP polls url until it answers 200, the process exits or time runs
// out; cfg, when set, provides TLS trust and a bearer token.
func waitHTTP(ctx context.Context, p *process, url string, cfg *rest.Config, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	if cfg != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cfg.CAData)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		if p.exited() {
			return p.failure("startup failed")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if cfg != nil {
			req.Header.Set("Authorization", "Bearer "+cfg.BearerToken)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Sprintf("%s not ready after %s (last answer: %s)", url, timeout, last))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitFile(ctx context.Context, p *process, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if p.exited() {
			return p.failure("startup failed")
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Sprintf("%s not written after %s", path, timeout))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// findBinDir returns dir, $TETHER_BIN_DIR, or bin/ at the root of the
// repository that contains the working directory, checking that the
// binaries are there.
func findBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("TETHER_BIN_DIR")
	}
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		for d := wd; ; d = filepath.Dir(d) {
			if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/tether-gitops/tether\n") {
				dir = filepath.Join(d, "bin")
				break
			}
			if filepath.Dir(d) == d {
				return "", errors.New("cannot find the tether repository above the working directory; set TETHER_BIN_DIR")
			}
		}
	}
	var missing []string
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s lacks %s: run `make tools` first", dir, strings.Join(missing, ", "))
	}
	return filepath.Abs(dir)
}

// FreePort asks the kernel for a free loopback port, for the test servers
// and the processes started here. Another process may take it before it is
// used; on a single-user test machine that is rare enough, and a failed
// start says which port was taken.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePort is FreePort for the control plane's own processes, which cannot
// start without one.
func freePort() int {
	port, err := FreePort()
	if err != nil {
		panic(err)
	}
	return port
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600)
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// auditPolicy logs request metadata (user, verb, URI, status), enough to
// count writes per identity.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`
