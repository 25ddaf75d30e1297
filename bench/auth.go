package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
)

// authNamespaces hold a private registry's Deployments; urunner watches
// them in namespaced mode, apart from the main population.
const authNamespaces = 10

// privateRegistry is a registry that wants credentials, and how to count
// what it was asked.
type privateRegistry struct {
	name  string // for namespaces and files
	title string
	host  string
	caPEM []byte
	push  func(ctx context.Context, repoTag, seed string) error
	// counts returns, cumulatively, the manifest HEADs answered with a
	// digest, the challenges (HEADs answered 401), the token requests, and
	// every other request.
	counts func() (heads, challenges, tokens int, others map[string]int, err error)
	// inferred: the registry cannot tell challenges from lookups, so the
	// challenges are the HEADs beyond one per reference.
	inferred bool
}

// authCount counts what urunner asks of registries that want credentials,
// over TLS with their own CA given to urunner as caFile: the CNCF
// distribution registry with htpasswd (Basic), counted from its access
// log, and olareg with the Docker token flow (Bearer), counted by the
// test ground's middleware. One HEAD per reference plus at most one
// challenge per host, and at most one token per repository, are the
// targets; issue 14 counted 208 HEADs for 200 references on distribution,
// one challenge per worker.
func (g *ground) authCount(ctx context.Context) error {
	secret := make([]byte, 12)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	password := hex.EncodeToString(secret)
	logins := map[string]string{"urunner": password}

	dist, err := testground.StartDistribution(ctx, testground.DistributionOptions{AccessLog: true, TLS: true, Logins: logins})
	if err != nil {
		return err
	}
	distErr := g.privateCount(ctx, privateRegistry{
		name:  "dist",
		title: "distribution 2.8 (Debian's docker-registry), htpasswd (Basic) over TLS",
		host:  dist.Host, caPEM: dist.CAPEM,
		push: func(ctx context.Context, repoTag, seed string) error {
			_, err := dist.PushImage(ctx, repoTag, seed)
			return err
		},
		counts: func() (int, int, int, map[string]int, error) {
			c, err := dist.AccessCounts()
			if err != nil {
				return 0, 0, 0, nil, err
			}
			others := maps.Clone(c)
			delete(others, "HEAD manifest 200")
			delete(others, "HEAD manifest 401")
			return c["HEAD manifest 200"], c["HEAD manifest 401"], 0, others, nil
		},
	}, password)
	if err := errors.Join(distErr, dist.Close()); err != nil {
		return err
	}

	tok, err := testground.StartRegistry(testground.RegistryOptions{TLS: true, TokenLogins: logins})
	if err != nil {
		return err
	}
	tokErr := g.privateCount(ctx, privateRegistry{
		name:  "token",
		title: "olareg with the Docker token flow (Bearer, /token) over TLS",
		host:  tok.Host, caPEM: tok.CAPEM,
		push: func(ctx context.Context, repoTag, seed string) error {
			_, err := tok.PushImage(ctx, repoTag, seed)
			return err
		},
		counts: func() (int, int, int, map[string]int, error) {
			c := tok.Requests()
			others := maps.Clone(c)
			delete(others, "HEAD manifest")
			delete(others, "GET token")
			return c["HEAD manifest"], 0, c["GET token"], others, nil
		},
		inferred: true,
	}, password)
	return errors.Join(tokErr, tok.Close())
}

// privateCount fills one private registry and its Deployments, then runs
// urunner on them alone (namespaced mode) for a baseline and o.reps
// steady runs, each counted.
func (g *ground) privateCount(ctx context.Context, reg privateRegistry, password string) error {
	o := g.o
	repos := ceilDiv(o.authRefs, len(tags))
	fmt.Fprintf(g.out, "\n== Private registry: %s; %d references in %d repositories on one host, %d Deployments, concurrency %d, no injected latency\n",
		reg.title, o.authRefs, repos, o.authDeployments, o.concurrency)
	refs := make([]string, o.authRefs)
	for i := range refs {
		refs[i] = fmt.Sprintf("private/app-%03d:%s", i/len(tags), tags[i%len(tags)])
	}
	t := time.Now()
	if err := parallel(ctx, len(refs), 8, func(ctx context.Context, i int) error {
		return reg.push(ctx, refs[i], refs[i])
	}); err != nil {
		return fmt.Errorf("push to %s: %w", reg.host, err)
	}
	var nss []string
	for i := range authNamespaces {
		nss = append(nss, fmt.Sprintf("private-%s-%02d", reg.name, i))
	}
	if err := parallel(ctx, len(nss), 8, func(ctx context.Context, i int) error {
		return create(ctx, func(ctx context.Context) error {
			_, err := g.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nss[i]}}, metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	if err := parallel(ctx, o.authDeployments, o.workers, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("p-%05d", i)
		sel := map[string]string{"app": name}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: nss[i%len(nss)]},
			Spec: appsv1.DeploymentSpec{
				Replicas: new(int32(0)),
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: sel},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: reg.host + "/" + refs[i%len(refs)]}}},
				},
			},
		}
		return create(ctx, func(ctx context.Context) error {
			_, err := g.cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return fmt.Errorf("create the Deployments of %s: %w", reg.host, err)
	}
	fmt.Fprintf(g.out, "ground: pushed %d images and created %d Deployments in %s\n", len(refs), o.authDeployments, round(time.Since(t)))

	caFile := filepath.Join(g.dir, "private-"+reg.name+"-ca.pem")
	if err := os.WriteFile(caFile, reg.caPEM, 0o600); err != nil {
		return err
	}
	registries := filepath.Join(g.dir, "private-"+reg.name+"-registries.yaml")
	yaml := fmt.Sprintf("registries:\n  - host: %q\n    caFile: %q\n    user: urunner\n    password: {env: BENCH_PRIVATE_PASSWORD}\n", reg.host, caFile)
	if err := os.WriteFile(registries, []byte(yaml), 0o600); err != nil {
		return err
	}
	env := append(append([]string{}, g.env...),
		"URUNNER_CONF_REGISTRIES_FILE="+registries,
		"BENCH_PRIVATE_PASSWORD="+password,
		"URUNNER_CONF_NAMESPACES="+strings.Join(nss, ","),
		"URUNNER_CONF_STATE_CONFIGMAP=urunner-state-private-"+reg.name,
	)
	env = append(env, o.env...)

	var prevH, prevC, prevT int
	prevO := map[string]int{}
	ok := true
	var lookups, challenges, tokens []float64
	for run := 0; run <= o.reps; run++ {
		name := "steady state"
		if run == 0 {
			name = "baseline"
		}
		r, err := runUrunner(ctx, g.bin, env, g.dir, fmt.Sprintf("run-private-%s-%d", reg.name, run))
		if err != nil {
			return err
		}
		h, c, tk, others, err := reg.counts()
		if err != nil {
			return err
		}
		h, c, tk, prevH, prevC, prevT = h-prevH, c-prevC, tk-prevT, h, c, tk
		extra := map[string]int{}
		for k, v := range others {
			if n := v - prevO[k]; n != 0 {
				extra[k] = n
			}
		}
		prevO = others
		if reg.inferred {
			c, h = h-o.authRefs, o.authRefs
		}
		met := h == o.authRefs && c >= 0 && c <= 1 && tk <= repos && len(extra) == 0 && r.ExitCode == 0
		ok = ok && met
		lookups, challenges, tokens = append(lookups, float64(h)), append(challenges, float64(c)), append(tokens, float64(tk))
		fmt.Fprintf(g.out, "   %-12s wall %-8s RSS %.1f MiB  exit %d  → %d HEADs = %d refs + %d challenge; %d tokens for %d repositories; other requests: %s [%s]\n",
			name, round(r.Wall), mib(r.MaxRSSKiB<<10), r.ExitCode, h+c, h, c, tk, repos, formatCounts(extra), verdict(met))
		fmt.Fprintf(g.out, "   %-12s urunner's budget: %s\n", "", budgetOf(r.Summary))
	}
	how := "from the registry's access log (status 200 and 401)"
	if reg.inferred {
		how = "by the test ground's middleware; challenges are the HEADs beyond one per reference"
	}
	l, c, tk := spreadOf(lookups), spreadOf(challenges), spreadOf(tokens)
	fmt.Fprintf(g.out, "   target: HEADs = references + at most 1 challenge per host, ≤ 1 token per repository, nothing else: [%s] (%d runs: %.0f–%.0f lookups, %.0f–%.0f challenges, %.0f–%.0f tokens; counted %s)\n",
		verdict(ok), len(lookups), l.min, l.max, c.min, c.max, tk.min, tk.max, how)
	return nil
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}
