package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// A right is one verb on one resource that RBAC grants a ServiceAccount:
// everywhere (a ClusterRole bound cluster-wide) or in one namespace (a
// Role), on any object or on one name.
type right struct {
	// Namespace is where the right holds; anywhere for a ClusterRoleBinding.
	Namespace string
	// Resource is resource.group, e.g. deployments.apps, or the core
	// resource alone, e.g. secrets.
	Resource string
	Verb     string
	// Name is the one object the right is for; "" for any.
	Name string
}

// anywhere is the Namespace of a right granted cluster-wide.
const anywhere = "*"

func (r right) String() string {
	s := fmt.Sprintf("%s %s in %s", r.Verb, r.Resource, r.Namespace)
	if r.Name != "" {
		s += " named " + r.Name
	}
	return s
}

// grant is the rights of verbs on resource in ns, on any object.
func grant(ns, resource string, verbs ...string) []right {
	return grantNamed(ns, resource, "", verbs...)
}

// grantNamed is the rights of verbs on one object.
func grantNamed(ns, resource, name string, verbs ...string) []right {
	var out []right
	for _, v := range verbs {
		out = append(out, right{Namespace: ns, Resource: resource, Verb: v, Name: name})
	}
	return out
}

// rightsOf joins lists of rights into one sorted, duplicate-free list.
func rightsOf(lists ...[]right) []right {
	var out []right
	for _, l := range lists {
		out = append(out, l...)
	}
	return sortRights(out)
}

func sortRights(rs []right) []right {
	slices.SortFunc(rs, func(a, b right) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(rs)
}

// expand turns one RBAC rule into rights in ns.
func expand(ns string, rule rbacv1.PolicyRule) []right {
	names := rule.ResourceNames
	if len(names) == 0 {
		names = []string{""}
	}
	var out []right
	for _, g := range rule.APIGroups {
		for _, res := range rule.Resources {
			if g != "" {
				res += "." + g
			}
			for _, v := range rule.Verbs {
				for _, n := range names {
					out = append(out, right{Namespace: ns, Resource: res, Verb: v, Name: n})
				}
			}
		}
	}
	return out
}

// renderedRights reads the RBAC objects of a helm template output and
// returns the rights each ServiceAccount ("namespace/name") is bound to.
// A binding to a role the render does not hold is an error: the chart
// must not rely on roles it does not ship.
func renderedRights(t *testing.T, manifest string) map[string][]right {
	t.Helper()
	roles := map[string][]rbacv1.PolicyRule{} // "ns/name", "/name" for ClusterRoles
	type binding struct {
		ns       string
		roleKey  string
		subjects []rbacv1.Subject
	}
	var bindings []binding
	for _, doc := range strings.Split(manifest, "\n---") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("render: %v", err)
		}
		switch meta.Kind {
		case "ClusterRole":
			var r rbacv1.ClusterRole
			mustUnmarshal(t, doc, &r)
			roles["/"+r.Name] = r.Rules
		case "Role":
			var r rbacv1.Role
			mustUnmarshal(t, doc, &r)
			roles[r.Namespace+"/"+r.Name] = r.Rules
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			mustUnmarshal(t, doc, &b)
			bindings = append(bindings, binding{anywhere, "/" + b.RoleRef.Name, b.Subjects})
		case "RoleBinding":
			var b rbacv1.RoleBinding
			mustUnmarshal(t, doc, &b)
			key := b.Namespace + "/" + b.RoleRef.Name
			if b.RoleRef.Kind == "ClusterRole" {
				key = "/" + b.RoleRef.Name
			}
			bindings = append(bindings, binding{b.Namespace, key, b.Subjects})
		}
	}
	out := map[string][]right{}
	for _, b := range bindings {
		rules, ok := roles[b.roleKey]
		if !ok {
			t.Fatalf("a binding in %s refers to role %s, which the chart does not render", b.ns, b.roleKey)
		}
		for _, s := range b.subjects {
			if s.Kind != rbacv1.ServiceAccountKind {
				t.Fatalf("a binding in %s names a %s, not a ServiceAccount", b.ns, s.Kind)
			}
			key := s.Namespace + "/" + s.Name
			for _, rule := range rules {
				out[key] = append(out[key], expand(b.ns, rule)...)
			}
		}
	}
	for k := range out {
		out[k] = sortRights(out[k])
	}
	return out
}

func mustUnmarshal(t *testing.T, doc string, into any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(doc), into); err != nil {
		t.Fatalf("render: %v\n%s", err, doc)
	}
}

// effectiveRights asks the API server, with the ServiceAccount's own
// token, what it may do in ns (`kubectl auth can-i --list -n NS`), and
// returns it as rights in ns, less what every ServiceAccount may do there
// (baseline: the same question asked by a ServiceAccount bound to nothing).
// A right granted cluster-wide shows in every namespace.
func effectiveRights(t *testing.T, sa, baseline kubernetes.Interface, ns string) []right {
	t.Helper()
	base := map[right]bool{}
	for _, r := range reviewRules(t, baseline, ns) {
		base[r] = true
	}
	var out []right
	for _, r := range reviewRules(t, sa, ns) {
		if !base[r] {
			out = append(out, r)
		}
	}
	return sortRights(out)
}

func reviewRules(t *testing.T, cs kubernetes.Interface, ns string) []right {
	t.Helper()
	rev, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(t.Context(), &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("rules review in %s: %v", ns, err)
	}
	if rev.Status.EvaluationError != "" {
		t.Fatalf("rules review in %s: %s", ns, rev.Status.EvaluationError)
	}
	var out []right
	for _, r := range rev.Status.ResourceRules {
		out = append(out, expand(ns, rbacv1.PolicyRule{
			Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames,
		})...)
	}
	return out
}

// in returns the rights of want that hold in ns: those granted there and
// those granted anywhere, as the API server reports them for ns.
func in(ns string, want []right) []right {
	var out []right
	for _, r := range want {
		if r.Namespace == ns || r.Namespace == anywhere {
			r.Namespace = ns
			out = append(out, r)
		}
	}
	return sortRights(out)
}

// access is one question to the API server's authorizer.
type access struct {
	verb, resource, ns, name string
}

func (a access) String() string {
	s := a.verb + " " + a.resource
	if a.ns != "" {
		s += " -n " + a.ns
	}
	if a.name != "" {
		s += " " + a.name
	}
	return s
}

// canI is `kubectl auth can-i` asked with the ServiceAccount's own token.
func canI(t *testing.T, cs kubernetes.Interface, a access) bool {
	t.Helper()
	resource, group, _ := strings.Cut(a.resource, ".")
	resource, sub, _ := strings.Cut(resource, "/")
	got, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: group, Resource: resource, Subresource: sub, Namespace: a.ns, Name: a.name,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("can-i %s: %v", a, err)
	}
	return got.Status.Allowed
}
