package apiclient

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// request is what the API server saw of one request.
type request struct {
	Method, Path, Query          string
	Accept, ContentType, Agent   string
	Body                         string
	ContentEncoding, AcceptEnc   string
	Authorization, Impersonation string
}

// apiServer records every request and answers as the API server would:
// 404, 409 or 403 for the objects so named, an empty object otherwise, an
// empty stream to a watch.
type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []request
}

func newAPIServer(t *testing.T) *apiServer {
	s := &apiServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Accept: r.Header.Get("Accept"), ContentType: r.Header.Get("Content-Type"), Agent: r.UserAgent(),
		Body: string(body), ContentEncoding: r.Header.Get("Content-Encoding"), AcceptEnc: r.Header.Get("Accept-Encoding"),
		Authorization: r.Header.Get("Authorization"), Impersonation: r.Header.Get("Impersonate-User"),
	})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	for _, e := range []struct {
		name   string
		code   int
		reason metav1.StatusReason
	}{{"missing", 404, metav1.StatusReasonNotFound}, {"stale", 409, metav1.StatusReasonConflict}, {"secret", 403, metav1.StatusReasonForbidden}} {
		if strings.HasSuffix(r.URL.Path, "/"+e.name) || strings.HasSuffix(r.URL.Path, "/"+e.name+"/status") {
			w.WriteHeader(e.code)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"`+e.name+` says the server","reason":"`+string(e.reason)+`","code":`+strconv.Itoa(e.code)+`}`)
			return
		}
	}
	if r.URL.Query().Get("watch") == "true" {
		return
	}
	_, _ = io.WriteString(w, `{"metadata":{"name":"answer","resourceVersion":"7"}}`)
}

func (s *apiServer) take() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seen
	s.seen = nil
	return out
}

// ops is what urunner calls on a resource, which a typed client of the
// Clientset and a Resource both have.
type ops[T runtime.Object, L runtime.Object] interface {
	Get(ctx context.Context, name string, o metav1.GetOptions) (T, error)
	List(ctx context.Context, o metav1.ListOptions) (L, error)
	Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)
	Create(ctx context.Context, obj T, o metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, o metav1.UpdateOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, o metav1.PatchOptions, subresources ...string) (T, error)
}

// statusOps is a resource with a status subresource (not Events).
type statusOps[T runtime.Object] interface {
	UpdateStatus(ctx context.Context, obj T, o metav1.UpdateOptions) (T, error)
}

// outcome is one call's result as a caller sees it.
type outcome struct {
	Result                                  string
	Err                                     string
	NotFound, Conflict, Forbidden, Requests bool
}

// calls runs the calls urunner makes on a resource (the listing's pages
// and selectors, the watch of the receiver's informer, the state's
// create and update, the restart's patches, the errors the run acts on)
// and returns what each returned.
func calls[T object, L runtime.Object](ctx context.Context, c ops[T, L], status bool, obj func(name string) T) []outcome {
	var out []outcome
	add := func(res runtime.Object, err error) {
		o := outcome{NotFound: apierrors.IsNotFound(err), Conflict: apierrors.IsConflict(err), Forbidden: apierrors.IsForbidden(err)}
		if err != nil {
			o.Err = err.Error()
		} else if m, ok := res.(metav1.Object); ok {
			o.Result = m.GetName() + "@" + m.GetResourceVersion()
		} else if l, ok := res.(metav1.ListInterface); ok {
			o.Result = "list@" + l.GetResourceVersion()
		}
		out = append(out, o)
	}
	patch := metav1.PatchOptions{FieldManager: "urunner"}
	add(c.Get(ctx, "web", metav1.GetOptions{}))
	add(c.Get(ctx, "missing", metav1.GetOptions{}))
	add(c.Get(ctx, "secret", metav1.GetOptions{}))
	add(c.List(ctx, metav1.ListOptions{Limit: 1}))
	add(c.List(ctx, metav1.ListOptions{LabelSelector: "urunner!=disable", Limit: 500, Continue: "page-2"}))
	add(c.List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Succeeded,status.phase!=Failed", Limit: 500, ResourceVersion: "0", ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}))
	add(c.List(ctx, metav1.ListOptions{TimeoutSeconds: ptr.To[int64](30)}))
	w, err := c.Watch(ctx, metav1.ListOptions{ResourceVersion: "7", AllowWatchBookmarks: true, TimeoutSeconds: ptr.To[int64](300)})
	if err == nil {
		w.Stop()
	}
	add(nil, err)
	add(c.Create(ctx, obj("web"), metav1.CreateOptions{FieldManager: "urunner"}))
	add(c.Create(ctx, obj("web"), metav1.CreateOptions{}))
	add(c.Update(ctx, obj("web"), metav1.UpdateOptions{FieldManager: "urunner"}))
	add(c.Update(ctx, obj("stale"), metav1.UpdateOptions{FieldManager: "urunner"}))
	if status {
		add(c.(statusOps[T]).UpdateStatus(ctx, obj("web"), metav1.UpdateOptions{}))
	}
	add(c.Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"spec":{"template":{"metadata":{"annotations":{"a":"b"}}}}}`), patch))
	add(c.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"test","path":"/metadata/resourceVersion","value":"6"}]`), patch))
	add(c.Patch(ctx, "stale", types.MergePatchType, []byte(`{"metadata":{"resourceVersion":"6"}}`), patch))
	return out
}

// compare runs calls on the Clientset's typed client and on the Resource,
// each against its own recording server, and fails on any difference in
// the requests sent or in what the caller got back.
func compare[T object, L runtime.Object](t *testing.T, cfg *rest.Config, typed func(kubernetes.Interface) ops[T, L], lean func(*Clients) ops[T, L], obj func(name string) T) {
	t.Helper()
	ctx := t.Context()
	ts, ls := newAPIServer(t), newAPIServer(t)
	tc, lc := rest.CopyConfig(cfg), rest.CopyConfig(cfg)
	tc.Host, lc.Host = ts.URL, ls.URL
	cs, err := kubernetes.NewForConfig(tc)
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(lc)
	if err != nil {
		t.Fatal(err)
	}
	_, status := typed(cs).(statusOps[T])
	wantOut, gotOut := calls(ctx, typed(cs), status, obj), calls(ctx, lean(api), status, obj)
	wantReq, gotReq := ts.take(), ls.take()
	if len(wantReq) == 0 {
		t.Fatal("the Clientset sent no request")
	}
	if diff := cmp.Diff(wantReq, gotReq); diff != "" {
		t.Errorf("requests differ from the Clientset's (-Clientset +apiclient):\n%s", diff)
	}
	if diff := cmp.Diff(wantOut, gotOut); diff != "" {
		t.Errorf("results differ from the Clientset's (-Clientset +apiclient):\n%s", diff)
	}
}

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "team", ResourceVersion: "6", Labels: map[string]string{"urunner": "enable"}}
}

// Every resource urunner uses is asked for exactly as the Clientset asks
// for it, with the run's configuration (protobuf, its rate limit and user
// agent) and with the receiver's (client-go's defaults), and its answers
// and errors reach the caller alike.
func TestRequestsAreTheClientsets(t *testing.T) {
	t.Parallel()
	run := &rest.Config{QPS: 50, Burst: 100, UserAgent: "urunner/test", BearerToken: "t0ken",
		ContentConfig: rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf", AcceptContentTypes: "application/vnd.kubernetes.protobuf,application/json"}}
	for _, cc := range []struct {
		name string
		cfg  *rest.Config
	}{
		{"the run's configuration", run},
		// QPS -1: no rate limit, else client-go's default (5 per second)
		// paces the test; TestGroupsShareOneRateLimiter checks the limits.
		{"the receiver's configuration (client-go's defaults)", &rest.Config{QPS: -1}},
		{"JSON only", &rest.Config{QPS: -1, ContentConfig: rest.ContentConfig{ContentType: "application/json"}, Impersonate: rest.ImpersonationConfig{UserName: "someone"}}},
	} {
		t.Run(cc.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				test func(t *testing.T, cfg *rest.Config)
			}{
				{"namespaces", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*corev1.Namespace, *corev1.NamespaceList] {
							return cs.CoreV1().Namespaces()
						},
						func(c *Clients) ops[*corev1.Namespace, *corev1.NamespaceList] { return c.Namespaces() },
						func(n string) *corev1.Namespace { return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}} })
				}},
				{"pods", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*corev1.Pod, *corev1.PodList] { return cs.CoreV1().Pods("") },
						func(c *Clients) ops[*corev1.Pod, *corev1.PodList] { return c.Pods("") },
						func(n string) *corev1.Pod { return &corev1.Pod{ObjectMeta: meta(n)} })
				}},
				{"events", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*corev1.Event, *corev1.EventList] { return cs.CoreV1().Events("team") },
						func(c *Clients) ops[*corev1.Event, *corev1.EventList] { return c.Events("team") },
						func(n string) *corev1.Event {
							return &corev1.Event{ObjectMeta: meta(n), Reason: "ImageDigestChanged", Count: 1,
								InvolvedObject: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}}
						})
				}},
				{"configmaps", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*corev1.ConfigMap, *corev1.ConfigMapList] {
							return cs.CoreV1().ConfigMaps("team")
						},
						func(c *Clients) ops[*corev1.ConfigMap, *corev1.ConfigMapList] { return c.ConfigMaps("team") },
						func(n string) *corev1.ConfigMap {
							return &corev1.ConfigMap{ObjectMeta: meta(n), Data: map[string]string{"b": "2", "a": "1"}, BinaryData: map[string][]byte{"z": {0, 1}}}
						})
				}},
				{"secrets", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*corev1.Secret, *corev1.SecretList] {
							return cs.CoreV1().Secrets("team")
						},
						func(c *Clients) ops[*corev1.Secret, *corev1.SecretList] { return c.Secrets("team") },
						func(n string) *corev1.Secret { return &corev1.Secret{ObjectMeta: meta(n)} })
				}},
				{"serviceaccounts", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*corev1.ServiceAccount, *corev1.ServiceAccountList] {
							return cs.CoreV1().ServiceAccounts("team")
						},
						func(c *Clients) ops[*corev1.ServiceAccount, *corev1.ServiceAccountList] {
							return c.ServiceAccounts("team")
						},
						func(n string) *corev1.ServiceAccount { return &corev1.ServiceAccount{ObjectMeta: meta(n)} })
				}},
				{"deployments", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*appsv1.Deployment, *appsv1.DeploymentList] {
							return cs.AppsV1().Deployments("team")
						},
						func(c *Clients) ops[*appsv1.Deployment, *appsv1.DeploymentList] { return c.Deployments("team") },
						func(n string) *appsv1.Deployment { return &appsv1.Deployment{ObjectMeta: meta(n)} })
				}},
				{"statefulsets", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*appsv1.StatefulSet, *appsv1.StatefulSetList] {
							return cs.AppsV1().StatefulSets("")
						},
						func(c *Clients) ops[*appsv1.StatefulSet, *appsv1.StatefulSetList] { return c.StatefulSets("") },
						func(n string) *appsv1.StatefulSet { return &appsv1.StatefulSet{ObjectMeta: meta(n)} })
				}},
				{"daemonsets", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*appsv1.DaemonSet, *appsv1.DaemonSetList] {
							return cs.AppsV1().DaemonSets("team")
						},
						func(c *Clients) ops[*appsv1.DaemonSet, *appsv1.DaemonSetList] { return c.DaemonSets("team") },
						func(n string) *appsv1.DaemonSet { return &appsv1.DaemonSet{ObjectMeta: meta(n)} })
				}},
				{"jobs", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*batchv1.Job, *batchv1.JobList] { return cs.BatchV1().Jobs("team") },
						func(c *Clients) ops[*batchv1.Job, *batchv1.JobList] { return c.Jobs("team") },
						func(n string) *batchv1.Job { return &batchv1.Job{ObjectMeta: meta(n)} })
				}},
				{"cronjobs", func(t *testing.T, cfg *rest.Config) {
					compare(t, cfg,
						func(cs kubernetes.Interface) ops[*batchv1.CronJob, *batchv1.CronJobList] {
							return cs.BatchV1().CronJobs("team")
						},
						func(c *Clients) ops[*batchv1.CronJob, *batchv1.CronJobList] { return c.CronJobs("team") },
						func(n string) *batchv1.CronJob {
							return &batchv1.CronJob{ObjectMeta: meta(n), Status: batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Kind: "Job", Name: "web-push-1"}}}}
						})
				}},
			} {
				t.Run(r.name, func(t *testing.T) { r.test(t, cc.cfg) })
			}
		})
	}
}

// All groups share one token bucket of the configuration's QPS and Burst,
// as a Clientset's do, and each client set has its own (the run's Events
// do not wait behind its PATCHes).
func TestGroupsShareOneRateLimiter(t *testing.T) {
	cfg := &rest.Config{Host: "https://example.invalid", QPS: 5, Burst: 10}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	limiter := func(c rest.Interface) any { return c.GetRateLimiter() }
	if limiter(a.core) == nil || limiter(a.core) != limiter(a.apps) || limiter(a.core) != limiter(a.batch) {
		t.Errorf("core, apps and batch do not share one rate limiter: %p %p %p", limiter(a.core), limiter(a.apps), limiter(a.batch))
	}
	if limiter(a.core) == limiter(b.core) {
		t.Error("two client sets share a rate limiter")
	}
	if got := limiter(a.core).(interface{ QPS() float32 }).QPS(); got != 5 {
		t.Errorf("QPS = %v, want 5", got)
	}
	if cfg.RateLimiter != nil {
		t.Error("New set the caller's configuration's rate limiter")
	}
	if _, err := New(&rest.Config{Host: "https://example.invalid", QPS: 5}); err == nil {
		t.Error("QPS without Burst: no error")
	}
}
