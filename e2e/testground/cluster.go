package testground

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// modulePath identifies this repository's go.mod when looking for the
// default bin dir; hack/tools has go.mod files of its own on the way up.
const modulePath = "github.com/urunner/urunner"

// binDirEnv overrides where the control plane binaries are looked up.
const binDirEnv = "URUNNER_TESTGROUND_BIN"

const (
	etcdTimeout      = 30 * time.Second
	apiserverTimeout = 90 * time.Second
	// The controller manager first waits for the API server's caches and
	// its own informers before the serviceaccount controller acts.
	controllerManagerTimeout = 60 * time.Second
	stopTimeout              = 10 * time.Second
	pollInterval             = 50 * time.Millisecond
	logTailLines             = 20
)

// controllers are the kube-controller-manager controllers the test ground
// runs: the workload controllers urunner's restarts go through, what makes
// namespaces and service accounts usable, and the aggregation that fills the
// admin/edit/view ClusterRoles. Node, volume and cloud controllers have
// nothing to do without kubelets and only slow the start down.
var controllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
}

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// BinDir holds etcd, kube-apiserver and kube-controller-manager. Empty
	// means $URUNNER_TESTGROUND_BIN, or else .cache/bin in the module root,
	// where hack/tools.sh builds them.
	BinDir string
	// Dir receives certificates, etcd data, component logs and kubeconfigs;
	// it is kept after Stop for reading the logs. etcd data left there by an
	// earlier cluster is deleted, since it names that cluster's ports.
	// Empty means a new temporary directory that Stop removes.
	Dir string
	// Log receives one progress line per component; nil discards them.
	Log io.Writer
	// AuditServiceAccounts makes the API server keep an audit log of the
	// requests service accounts make, read with Cluster.AuditEvents: what
	// a process holding a ServiceAccount's token really asked for.
	AuditServiceAccounts bool
	// NoControllerManager starts etcd and kube-apiserver only: a quiet
	// ground for measurements, where no controller works through a backlog
	// of thousands of new objects on the same cores as the program
	// measured. Nothing reacts to writes (a restarted Deployment gets no
	// ReplicaSet, a namespace no default ServiceAccount); the API server's
	// own bootstrap still creates the default namespaces.
	NoControllerManager bool
}

// Cluster is a running control plane on loopback: etcd, kube-apiserver and
// kube-controller-manager as child processes. There is no kubelet, so
// controllers create ReplicaSets and Pods but no Pod ever runs.
type Cluster struct {
	Dir            string
	Host           string // https://127.0.0.1:PORT
	CAData         []byte // PEM of the CA that signed the serving certificate
	AdminToken     string
	KubeconfigPath string // admin kubeconfig in Dir, user in group system:masters

	auditLog  string // "" unless ClusterOptions.AuditServiceAccounts
	removeDir bool
	ready     bool       // StartCluster returned it; exits before Stop are failures
	procs     []*process // in start order
	stopOnce  sync.Once
	stopErr   error
}

// process is one started child and what is needed to stop it and explain
// its failure.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done is closed
}

// StartCluster starts etcd, kube-apiserver and kube-controller-manager and
// returns once the API server is ready and the controller manager has
// created the default ServiceAccount (or once the API server is ready, with
// NoControllerManager). ctx bounds the start only: the
// processes run until Stop. On error, whatever was started is stopped.
func StartCluster(ctx context.Context, opts ClusterOptions) (c *Cluster, err error) {
	began := time.Now()
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	bins := map[string]string{}
	names := []string{"etcd", "kube-apiserver", "kube-controller-manager"}
	if opts.NoControllerManager {
		names = names[:2]
	}
	for _, name := range names {
		p := filepath.Join(binDir, name)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("%s is missing from %s: run hack/tools.sh to build it (or set %s)", name, binDir, binDirEnv)
		}
		bins[name] = p
	}
	// --version costs each binary its package init; asking all three while
	// the keys are generated keeps that off the critical path.
	versions := make(map[string]string, len(bins))
	var versionsMu sync.Mutex
	var versionsWG sync.WaitGroup
	for name, p := range bins {
		versionsWG.Go(func() {
			v := binaryVersion(ctx, p)
			versionsMu.Lock()
			versions[name] = v
			versionsMu.Unlock()
		})
	}
	defer versionsWG.Wait()

	c = &Cluster{Dir: opts.Dir}
	if c.Dir == "" {
		c.Dir, err = os.MkdirTemp("", "urunner-testground-")
		if err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		c.removeDir = true
	} else if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
			c = nil
		}
	}()

	etcdData := filepath.Join(c.Dir, "etcd-data")
	if err := os.RemoveAll(etcdData); err != nil {
		return c, fmt.Errorf("remove old etcd data: %w", err)
	}
	f, err := writeCredentials(c.Dir)
	if err != nil {
		return c, err
	}
	c.CAData = f.caPEM
	c.AdminToken = f.adminToken

	ports, err := freePorts(4)
	if err != nil {
		return c, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	apiPort, kcmPort := ports[2], ports[3]
	c.Host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	logLine := func(p *process, addr string) {
		versionsWG.Wait()
		fmt.Fprintf(logw, "testground: %s version=%s addr=%s pid=%d log=%s\n",
			p.name, versions[p.name], addr, p.cmd.Process.Pid, p.logPath)
	}

	etcd, err := c.start(bins["etcd"], "etcd",
		"--name=testground",
		"--data-dir="+etcdData,
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=testground="+peerURL,
		// Test data is thrown away, so durability buys nothing and fsync
		// costs seconds on slow disks.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return c, err
	}
	plain := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer plain.CloseIdleConnections()
	if err := etcd.poll(ctx, etcdTimeout, func(ctx context.Context) error {
		return checkHealth(ctx, plain, etcdURL+"/health", "", func(body []byte) bool {
			return bytes.Contains(body, []byte(`"health":"true"`))
		})
	}); err != nil {
		return c, etcd.failure(fmt.Errorf("wait for etcd health: %w", err))
	}
	logLine(etcd, etcdURL)

	var auditFlags []string
	if opts.AuditServiceAccounts {
		if c.auditLog, auditFlags, err = auditArgs(c.Dir); err != nil {
			return c, err
		}
	}
	apiserver, err := c.start(bins["kube-apiserver"], "kube-apiserver", append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Since 1.37 the lease reconciler refuses a loopback advertise
		// address, as Endpoints may not hold one. Nothing here routes to
		// the API server through the kubernetes Service, so keep its
		// Endpoints empty instead of advertising a routable address.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + f.servingCert,
		"--tls-private-key-file=" + f.servingKey,
		"--client-ca-file=" + f.caCert,
		"--authorization-mode=Node,RBAC",
		"--token-auth-file=" + f.tokens,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f.saPublic,
		"--service-account-signing-key-file=" + f.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
	}, auditFlags...)...)
	if err != nil {
		return c, err
	}
	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(f.caPEM)
	tlsClient := &http.Client{Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: caPool, MinVersion: tls.VersionTLS12},
	}}
	defer tlsClient.CloseIdleConnections()
	if err := apiserver.poll(ctx, apiserverTimeout, func(ctx context.Context) error {
		return checkHealth(ctx, tlsClient, c.Host+"/readyz", c.AdminToken, nil)
	}); err != nil {
		return c, apiserver.failure(fmt.Errorf("wait for kube-apiserver /readyz: %w", err))
	}
	logLine(apiserver, c.Host)

	c.KubeconfigPath = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := WriteKubeconfig(c.KubeconfigPath, c.AdminConfig()); err != nil {
		return c, err
	}
	if opts.NoControllerManager {
		fmt.Fprintf(logw, "testground: cluster ready (no controller manager) host=%s kubeconfig=%s took=%s\n",
			c.Host, c.KubeconfigPath, time.Since(began).Round(time.Millisecond))
		c.ready = true
		return c, nil
	}
	kcmKubeconfig := filepath.Join(c.Dir, "kube-controller-manager.kubeconfig")
	kcmConfig := c.AdminConfig()
	kcmConfig.BearerToken = f.controllerManagerToken
	if err := WriteKubeconfig(kcmKubeconfig, kcmConfig); err != nil {
		return c, err
	}

	kcm, err := c.start(bins["kube-controller-manager"], "kube-controller-manager",
		"--kubeconfig="+kcmKubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(kcmPort),
		// Without these it would write a self-signed pair to a cert dir;
		// the serving certificate already names 127.0.0.1.
		"--tls-cert-file="+f.servingCert,
		"--tls-private-key-file="+f.servingKey,
		"--root-ca-file="+f.caCert,
		"--service-account-private-key-file="+f.saKey,
		"--use-service-account-credentials=false",
		"--controllers="+strings.Join(controllers, ","),
		// Tests share one ground: one that creates a thousand Deployments
		// must not leave the next test's rollout queued behind them for
		// minutes at the controller's default 20 requests a second (a
		// rollout that never starts is judged unfinished, not failed).
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
	)
	if err != nil {
		return c, err
	}
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return c, fmt.Errorf("admin client: %w", err)
	}
	// The default ServiceAccount appears only when the serviceaccount
	// controller runs, which proves the controller manager reached the API
	// server with its token and started its controllers.
	if err := kcm.poll(ctx, controllerManagerTimeout, func(ctx context.Context) error {
		_, err := admin.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return c, kcm.failure(fmt.Errorf("wait for the default ServiceAccount: %w", err))
	}
	logLine(kcm, "https://127.0.0.1:"+strconv.Itoa(kcmPort))
	fmt.Fprintf(logw, "testground: cluster ready host=%s kubeconfig=%s took=%s\n",
		c.Host, c.KubeconfigPath, time.Since(began).Round(time.Millisecond))
	c.ready = true
	return c, nil
}

// AdminConfig returns a new config for the static admin token, a member of
// system:masters. Callers may change the copy freely.
func (c *Cluster) AdminConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     c.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: slices.Clone(c.CAData)},
		// client-go's default of 5 QPS makes tests that create many
		// objects wait on the client, not on the cluster.
		QPS:   100,
		Burst: 200,
	}
}

// ServiceAccountConfig returns a config that authenticates as the
// ServiceAccount namespace/name with a one-hour token from the TokenRequest
// API. The ServiceAccount is created if it does not exist; the namespace
// must. It has no permissions beyond what RBAC grants every service
// account, so tests bind the roles they mean to test.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	_, err = admin.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create service account %s/%s: %w", namespace, name, err)
	}
	expiration := int64(time.Hour / time.Second)
	tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiration},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("request token for service account %s/%s: %w", namespace, name, err)
	}
	cfg := c.AdminConfig()
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// PIDs returns the process IDs of the components this Cluster started, in
// start order.
func (c *Cluster) PIDs() []int {
	pids := make([]int, 0, len(c.procs))
	for _, p := range c.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// Stop ends the components in reverse start order: SIGTERM, then SIGKILL
// if one has not exited within 10 seconds. It signals only the processes
// it started, by PID, and removes Dir if StartCluster created it. A
// component that had exited on its own is reported, since the test that
// ran against it saw a broken cluster. Calling it again returns the first
// result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		for _, p := range slices.Backward(c.procs) {
			if err := p.stop(c.ready); err != nil {
				errs = append(errs, err)
			}
		}
		if c.removeDir {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, fmt.Errorf("remove cluster dir: %w", err))
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// WriteKubeconfig writes a kubeconfig file for cfg's server, CA and bearer
// token, for kubectl, helm or a process under test.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	const name = "testground"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthority:     cfg.CAFile,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		Token:     cfg.BearerToken,
		TokenFile: cfg.BearerTokenFile,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// start runs bin with args, its output going to <Dir>/<name>.log, and
// records the process so that Stop ends it.
func (c *Cluster) start(bin, name string, args ...string) (*process, error) {
	p := &process{name: name, logPath: filepath.Join(c.Dir, name+".log"), done: make(chan struct{})}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	// The child gets its own copy of the descriptor, so the file can be
	// closed here right after the start.
	defer logFile.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = logFile
	p.cmd.Stderr = logFile
	// A test binary that crashes or is killed by go test's timeout never
	// calls Stop; the kernel then kills the children instead of leaving a
	// control plane behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, p)
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// poll calls check until it returns nil, the timeout passes, ctx ends or
// the process exits, whichever comes first.
func (p *process) poll(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		err := check(attemptCtx)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w (last check: %v)", timeout, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// failure adds the end of the component's log to err, since that is where
// the reason is (a rejected flag, a port in use).
func (p *process) failure(err error) error {
	tail, tailErr := lastLines(p.logPath, logTailLines)
	if tailErr != nil {
		return fmt.Errorf("%w (read %s: %v)", err, p.logPath, tailErr)
	}
	return fmt.Errorf("%w\nlast lines of %s:\n%s", err, p.logPath, tail)
}

// stop sends SIGTERM and, if the process outlives stopTimeout, SIGKILL.
// An exit caused by these signals is the expected outcome, not an error;
// with reportExited, an exit before stop is.
func (p *process) stop(reportExited bool) error {
	select {
	case <-p.done:
		if reportExited {
			return fmt.Errorf("%s (pid %d) exited before Stop: %v", p.name, p.cmd.Process.Pid, p.waitErr)
		}
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("terminate %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

// checkHealth GETs url and succeeds on 200 with a body that ok accepts
// (any body if ok is nil).
func checkHealth(ctx context.Context, client *http.Client, url, token string, ok func([]byte) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || (ok != nil && !ok(body)) {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// resolveBinDir applies the BinDir default: $URUNNER_TESTGROUND_BIN, else
// .cache/bin in the module root.
func resolveBinDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if dir := os.Getenv(binDirEnv); dir != "" {
		return dir, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("find the bin dir (or set %s): %w", binDirEnv, err)
	}
	return filepath.Join(root, ".cache", "bin"), nil
}

// moduleRoot walks up from the working directory to this module's go.mod.
// go test runs in the package directory, so tests find it wherever the
// repository is checked out.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod for module %s above %s", modulePath, wd)
		}
	}
}

func isModuleRoot(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		return line == "module "+modulePath
	}
	return false
}

// binaryVersion returns what `bin --version` says, reduced to the version:
// "v1.37.2" from "Kubernetes v1.37.2", "3.6.16" from "etcd Version: 3.6.16".
// It is for the progress log only, so a failure reads "unknown".
func binaryVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	first, _, _ := strings.Cut(string(out), "\n")
	fields := strings.Fields(first)
	if err != nil || len(fields) == 0 {
		return "unknown"
	}
	return fields[len(fields)-1]
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners stay open until every port is picked, so the kernel cannot
// hand out the same port twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func lastLines(path string, n int) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}

// credentialFiles are the paths and secrets writeCredentials produced.
type credentialFiles struct {
	caCert, servingCert, servingKey string
	saKey, saPublic                 string
	tokens                          string
	caPEM                           []byte
	adminToken                      string
	controllerManagerToken          string
}

// writeCredentials generates, into dir, a CA, a serving certificate it
// signs, the service account signing key pair and the static token file.
func writeCredentials(dir string) (credentialFiles, error) {
	f := credentialFiles{
		caCert:      filepath.Join(dir, "ca.crt"),
		servingCert: filepath.Join(dir, "serving.crt"),
		servingKey:  filepath.Join(dir, "serving.key"),
		saKey:       filepath.Join(dir, "sa.key"),
		saPublic:    filepath.Join(dir, "sa.pub"),
		tokens:      filepath.Join(dir, "tokens.csv"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "urunner-testground-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, fmt.Errorf("parse CA certificate: %w", err)
	}
	f.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	servingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, fmt.Errorf("generate serving key: %w", err)
	}
	servingTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{
			"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
		},
		// 10.0.0.1 is the kubernetes Service's IP in --service-cluster-ip-range.
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 0, 0, 1)},
	}
	servingDER, err := x509.CreateCertificate(rand.Reader, servingTmpl, ca, &servingKey.PublicKey, caKey)
	if err != nil {
		return f, fmt.Errorf("create serving certificate: %w", err)
	}
	servingKeyDER, err := x509.MarshalPKCS8PrivateKey(servingKey)
	if err != nil {
		return f, fmt.Errorf("marshal serving key: %w", err)
	}

	// Service account tokens are signed with RSA because RS256 is what
	// every token consumer accepts.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return f, fmt.Errorf("generate service account key: %w", err)
	}
	saPublicDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return f, fmt.Errorf("marshal service account public key: %w", err)
	}

	if f.adminToken, err = randomToken(); err != nil {
		return f, err
	}
	if f.controllerManagerToken, err = randomToken(); err != nil {
		return f, err
	}
	// Format: token,user,uid,"group1,group2". See
	// https://kubernetes.io/docs/reference/access-authn-authz/authentication/#static-token-file
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,system:kube-controller-manager,kube-controller-manager,\"system:masters\"\n",
		f.adminToken, f.controllerManagerToken)

	for _, w := range []struct {
		path string
		data []byte
	}{
		{f.caCert, f.caPEM},
		{f.servingCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: servingDER})},
		{f.servingKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: servingKeyDER})},
		{f.saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})},
		{f.saPublic, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPublicDER})},
		{f.tokens, []byte(tokens)},
	} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return f, fmt.Errorf("write %s: %w", w.path, err)
		}
	}
	return f, nil
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
