// Package apiclient talks to the Kubernetes API server over REST clients
// whose scheme holds only the API groups urunner uses: core/v1, apps/v1 and
// batch/v1, with meta/v1's options and Status.
//
// client-go's typed Clientset (k8s.io/client-go/kubernetes) registers every
// API group's types in its scheme at init and links all of k8s.io/api into
// the binary: for urunner, 33 MiB of binary and 16 MiB of resident memory
// before any work (BENCHMARKS.md, "Memory: the floor"). The clients here
// send the requests the Clientset's typed clients send (Resource builds
// them as k8s.io/client-go/gentype does, protobuf preferred), share one
// HTTP client and one rate limiter as a Clientset's groups do, and return
// the same errors (apierrors.IsConflict, IsNotFound, IsForbidden work on
// them).
package apiclient

import (
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// scheme holds the groups urunner reads and writes, registered as
// k8s.io/client-go/kubernetes/scheme registers all of them.
var (
	scheme         = runtime.NewScheme()
	codecs         = serializer.NewCodecFactory(scheme)
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	groups := runtime.NewSchemeBuilder(corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme)
	utilruntime.Must(groups.AddToScheme(scheme))
}

// Clients are the REST clients of the groups urunner uses, sharing one
// HTTP client and one rate limiter (the configuration's QPS and Burst).
type Clients struct {
	core, apps, batch rest.Interface
}

// New returns the clients for c, as kubernetes.NewForConfig builds a
// Clientset: the default user agent when c names none, one transport, and
// one token bucket of c.QPS and c.Burst for all groups when c has no rate
// limiter of its own.
func New(c *rest.Config) (*Clients, error) {
	cfg := *c
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	httpClient, err := rest.HTTPClientFor(&cfg)
	if err != nil {
		return nil, err
	}
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		if cfg.Burst <= 0 {
			return nil, fmt.Errorf("burst is required to be greater than 0 when RateLimiter is not set and QPS is set to greater than 0")
		}
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	var cs Clients
	if cs.core, err = groupClient(&cfg, httpClient, "/api", corev1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if cs.apps, err = groupClient(&cfg, httpClient, "/apis", appsv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if cs.batch, err = groupClient(&cfg, httpClient, "/apis", batchv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	return &cs, nil
}

// groupClient is the REST client of one group version, configured as the
// generated typed clients' setConfigDefaults configures theirs.
func groupClient(c *rest.Config, h *http.Client, apiPath string, gv schema.GroupVersion) (rest.Interface, error) {
	cfg := *c
	cfg.GroupVersion = &gv
	cfg.APIPath = apiPath
	cfg.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(scheme, codecs).WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientForConfigAndClient(&cfg, h)
}

// resource builds a Resource as the generated typed clients build theirs:
// the resource's name, the group's REST client, the scheme's parameter
// codec, and protobuf preferred (every built-in type has it).
func resource[T object, L runtime.Object](c rest.Interface, name, namespace string, obj func() T, list func() L) *Resource[T, L] {
	return &Resource[T, L]{client: c, resource: name, namespace: namespace, newObject: obj, newList: list}
}

// Namespaces is the namespaces' client.
func (c *Clients) Namespaces() *Resource[*corev1.Namespace, *corev1.NamespaceList] {
	return resource(c.core, "namespaces", "", func() *corev1.Namespace { return &corev1.Namespace{} }, func() *corev1.NamespaceList { return &corev1.NamespaceList{} })
}

// Pods is the client of the pods in ns.
func (c *Clients) Pods(ns string) *Resource[*corev1.Pod, *corev1.PodList] {
	return resource(c.core, "pods", ns, func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} })
}

// Events is the client of the core/v1 Events in ns.
func (c *Clients) Events(ns string) *Resource[*corev1.Event, *corev1.EventList] {
	return resource(c.core, "events", ns, func() *corev1.Event { return &corev1.Event{} }, func() *corev1.EventList { return &corev1.EventList{} })
}

// ConfigMaps is the client of the ConfigMaps in ns.
func (c *Clients) ConfigMaps(ns string) *Resource[*corev1.ConfigMap, *corev1.ConfigMapList] {
	return resource(c.core, "configmaps", ns, func() *corev1.ConfigMap { return &corev1.ConfigMap{} }, func() *corev1.ConfigMapList { return &corev1.ConfigMapList{} })
}

// Secrets is the client of the Secrets in ns.
func (c *Clients) Secrets(ns string) *Resource[*corev1.Secret, *corev1.SecretList] {
	return resource(c.core, "secrets", ns, func() *corev1.Secret { return &corev1.Secret{} }, func() *corev1.SecretList { return &corev1.SecretList{} })
}

// ServiceAccounts is the client of the ServiceAccounts in ns.
func (c *Clients) ServiceAccounts(ns string) *Resource[*corev1.ServiceAccount, *corev1.ServiceAccountList] {
	return resource(c.core, "serviceaccounts", ns, func() *corev1.ServiceAccount { return &corev1.ServiceAccount{} }, func() *corev1.ServiceAccountList { return &corev1.ServiceAccountList{} })
}

// Deployments is the client of the Deployments in ns.
func (c *Clients) Deployments(ns string) *Resource[*appsv1.Deployment, *appsv1.DeploymentList] {
	return resource(c.apps, "deployments", ns, func() *appsv1.Deployment { return &appsv1.Deployment{} }, func() *appsv1.DeploymentList { return &appsv1.DeploymentList{} })
}

// StatefulSets is the client of the StatefulSets in ns.
func (c *Clients) StatefulSets(ns string) *Resource[*appsv1.StatefulSet, *appsv1.StatefulSetList] {
	return resource(c.apps, "statefulsets", ns, func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} }, func() *appsv1.StatefulSetList { return &appsv1.StatefulSetList{} })
}

// DaemonSets is the client of the DaemonSets in ns.
func (c *Clients) DaemonSets(ns string) *Resource[*appsv1.DaemonSet, *appsv1.DaemonSetList] {
	return resource(c.apps, "daemonsets", ns, func() *appsv1.DaemonSet { return &appsv1.DaemonSet{} }, func() *appsv1.DaemonSetList { return &appsv1.DaemonSetList{} })
}

// Jobs is the client of the Jobs in ns.
func (c *Clients) Jobs(ns string) *Resource[*batchv1.Job, *batchv1.JobList] {
	return resource(c.batch, "jobs", ns, func() *batchv1.Job { return &batchv1.Job{} }, func() *batchv1.JobList { return &batchv1.JobList{} })
}

// CronJobs is the client of the CronJobs in ns.
func (c *Clients) CronJobs(ns string) *Resource[*batchv1.CronJob, *batchv1.CronJobList] {
	return resource(c.batch, "cronjobs", ns, func() *batchv1.CronJob { return &batchv1.CronJob{} }, func() *batchv1.CronJobList { return &batchv1.CronJobList{} })
}
