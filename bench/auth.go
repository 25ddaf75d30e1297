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
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/urunner/urunner/e2e/testground"
)

// authNamespaces hold the private registry's Deployments; urunner watches
// them in namespaced mode, apart from the main population.
const authNamespaces = 10

// authCount counts what urunner asks of a real private registry: the CNCF
// distribution registry with htpasswd logins over TLS (its own CA, given
// to urunner as caFile), counted from the registry's access log. One HEAD
// per reference and at most one challenge per host is the target; issue 14
// counted 208 HEADs for 200 references, one challenge per worker.
func (g *ground) authCount(ctx context.Context) (err error) {
	o := g.o
	secret := make([]byte, 12)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	password := hex.EncodeToString(secret)
	reg, err := testground.StartDistribution(ctx, testground.DistributionOptions{
		AccessLog: true, TLS: true, Logins: map[string]string{"urunner": password},
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, reg.Close()) }()
	fmt.Fprintf(g.out, "\n== Private registry: distribution (Debian's docker-registry) with htpasswd over TLS, %d references in %d repositories on one host, %d Deployments, concurrency %d, no injected latency\n",
		o.authRefs, ceilDiv(o.authRefs, len(tags)), o.authDeployments, o.concurrency)

	refs := make([]string, o.authRefs)
	for i := range refs {
		refs[i] = fmt.Sprintf("private/app-%03d:%s", i/len(tags), tags[i%len(tags)])
	}
	t := time.Now()
	if err := parallel(ctx, len(refs), 8, func(ctx context.Context, i int) error {
		_, err := reg.PushImage(ctx, refs[i], refs[i])
		return err
	}); err != nil {
		return fmt.Errorf("push to the private registry: %w", err)
	}
	var nss []string
	for i := range authNamespaces {
		nss = append(nss, fmt.Sprintf("private-%02d", i))
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
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: reg.Host + "/" + refs[i%len(refs)]}}},
				},
			},
		}
		return create(ctx, func(ctx context.Context) error {
			_, err := g.cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return fmt.Errorf("create the private registry's Deployments: %w", err)
	}
	fmt.Fprintf(g.out, "ground: pushed %d images and created %d Deployments in %s\n", len(refs), o.authDeployments, round(time.Since(t)))

	caFile := filepath.Join(g.dir, "private-ca.pem")
	if err := os.WriteFile(caFile, reg.CAPEM, 0o600); err != nil {
		return err
	}
	registries := filepath.Join(g.dir, "private-registries.yaml")
	yaml := fmt.Sprintf("registries:\n  - host: %q\n    caFile: %q\n    user: urunner\n    password: {env: BENCH_PRIVATE_PASSWORD}\n", reg.Host, caFile)
	if err := os.WriteFile(registries, []byte(yaml), 0o600); err != nil {
		return err
	}
	env := append(append([]string{}, g.env...),
		"URUNNER_CONF_REGISTRIES_FILE="+registries,
		"BENCH_PRIVATE_PASSWORD="+password,
		"URUNNER_CONF_NAMESPACES="+strings.Join(nss, ","),
		"URUNNER_CONF_STATE_CONFIGMAP=urunner-state-private",
	)
	env = append(env, o.env...)

	seen := map[string]int{}
	ok := true
	var heads, challenges []int
	for run := 0; run <= o.reps; run++ {
		name := "steady state"
		if run == 0 {
			name = "baseline"
		}
		r, err := runUrunner(ctx, g.bin, env, g.dir, fmt.Sprintf("run-private-%d", run))
		if err != nil {
			return err
		}
		counts, err := reg.AccessCounts()
		if err != nil {
			return err
		}
		got := map[string]int{}
		for k, v := range counts {
			if n := v - seen[k]; n != 0 {
				got[k] = n
			}
		}
		seen = counts
		h, c := got["HEAD manifest 200"], got["HEAD manifest 401"]
		others := maps.Clone(got)
		delete(others, "HEAD manifest 200")
		delete(others, "HEAD manifest 401")
		met := h == o.authRefs && c <= 1 && len(others) == 0 && r.ExitCode == 0
		ok = ok && met
		heads, challenges = append(heads, h), append(challenges, c)
		verdict := "met"
		if !met {
			verdict = "MISSED"
		}
		fmt.Fprintf(g.out, "   %-12s wall %-8s RSS %.1f MiB  exit %d  registry: %s  → %d HEADs = %d refs + %d challenge [%s]\n",
			name, round(r.Wall), mib(r.MaxRSSKiB<<10), r.ExitCode, formatCounts(got), h+c, h, c, verdict)
	}
	slices.Sort(heads)
	verdict := "met"
	if !ok {
		verdict = "MISSED"
	}
	fmt.Fprintf(g.out, "   target: HEADs = references + at most 1 challenge per host, nothing else: [%s] (%d runs: %d–%d lookups, %d–%d challenges)\n",
		verdict, len(heads), heads[0], heads[len(heads)-1], slices.Min(challenges), slices.Max(challenges))
	return nil
}
