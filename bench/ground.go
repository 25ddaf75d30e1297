package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/urunner/urunner/e2e/testground"
	"github.com/urunner/urunner/kube"
)

// benchLabel marks the namespaces the benchmark creates, to count them.
const benchLabel = "urunner-bench"

// parallel calls f for every index below n, workers at a time, and
// returns the first error; after an error no new call starts.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// create calls f until it succeeds, retrying what an API server under load
// answers (429, 5xx, timeouts). AlreadyExists is success: an earlier try
// that timed out may have created the object.
func create(ctx context.Context, f func(context.Context) error) error {
	var err error
	for attempt := range 6 {
		err = f(ctx)
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if !apierrors.IsTooManyRequests(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) &&
			!apierrors.IsInternalError(err) && !apierrors.IsServiceUnavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return err
}

// pushAll pushes the current generation of the given references.
func pushAll(ctx context.Context, p *plan, regs []*testground.Registry, refs []int, workers int) error {
	return parallel(ctx, len(refs), workers, func(ctx context.Context, i int) error {
		r := p.refs[refs[i]]
		_, err := regs[r.host].PushImage(ctx, r.repoTag(), r.seed())
		return err
	})
}

func (p *plan) image(regs []*testground.Registry, ref int) string {
	r := p.refs[ref]
	return regs[r.host].Host + "/" + r.repoTag()
}

// populate creates the plan's namespaces, then its Deployments in order.
func populate(ctx context.Context, cs kubernetes.Interface, p *plan, regs []*testground.Registry, order []int, pullPolicy string, workers int) error {
	err := parallel(ctx, len(p.namespaces), workers, func(ctx context.Context, i int) error {
		n := p.namespaces[i]
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{benchLabel: "true"}}}
		if n.enabled {
			ns.Labels[kube.Label] = kube.LabelEnable
		}
		return create(ctx, func(ctx context.Context) error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("create namespaces: %w", err)
	}
	err = parallel(ctx, len(order), workers, func(ctx context.Context, i int) error {
		d := p.deployments[order[i]]
		obj := p.deploymentObject(d, regs, corev1.PullPolicy(pullPolicy))
		ns := p.namespaces[d.namespace].name
		return create(ctx, func(ctx context.Context) error {
			_, err := cs.AppsV1().Deployments(ns).Create(ctx, obj, metav1.CreateOptions{})
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("create deployments: %w", err)
	}
	return nil
}

func (p *plan) deploymentObject(d deploymentPlan, regs []*testground.Registry, pullPolicy corev1.PullPolicy) *appsv1.Deployment {
	sel := map[string]string{"app": d.name}
	labels := map[string]string{"app": d.name}
	if d.disabled {
		labels[kube.Label] = kube.LabelDisable
	}
	var spec corev1.PodSpec
	for j, name := range containerNames {
		c := corev1.Container{Name: name, Image: p.image(regs, d.refs[j]), ImagePullPolicy: pullPolicy}
		if name == "init" {
			spec.InitContainers = append(spec.InitContainers, c)
		} else {
			spec.Containers = append(spec.Containers, c)
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: d.name, Namespace: p.namespaces[d.namespace].name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			// No pods: the controller manager still makes a ReplicaSet
			// per rollout, which is what a restart costs the cluster.
			Replicas: new(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       spec,
			},
		},
	}
}

// waitCounts waits until a LIST shows the plan's namespaces and
// Deployments.
func waitCounts(ctx context.Context, cs kubernetes.Interface, p *plan, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		nsN, dN, err := counts(ctx, cs)
		if err == nil && nsN >= len(p.namespaces) && dN >= len(p.deployments) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s the API server lists %d namespaces and %d Deployments, want %d and %d (last error: %v)",
				timeout, nsN, dN, len(p.namespaces), len(p.deployments), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// counts returns the benchmark's namespaces and all Deployments, from
// LISTs of one item each: the API server reports how many remain.
func counts(ctx context.Context, cs kubernetes.Interface) (namespaces, deployments int, err error) {
	count := func(items int, remaining *int64) int {
		if remaining != nil {
			return items + int(*remaining)
		}
		return items
	}
	nl, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: benchLabel + "=true"})
	if err != nil {
		return 0, 0, err
	}
	dl, err := cs.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return len(nl.Items), 0, err
	}
	return len(nl.Items), count(len(dl.Items), dl.RemainingItemCount), nil
}

// waitSettled waits, at most timeout, until the deployment controller has
// observed every Deployment's latest generation (made its ReplicaSet), and
// returns how many of how many Deployments it has not. With a zero timeout
// it looks once.
func waitSettled(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) (pending, total int, err error) {
	deadline := time.Now().Add(timeout)
	interval := time.Second
	for {
		pending, total, err = unobserved(ctx, cs)
		if err == nil && (pending == 0 || time.Now().After(deadline)) {
			return pending, total, nil
		}
		if total > 10000 {
			// Each poll lists everything; do not make the API server
			// spend its time on the poll.
			interval = 5 * time.Second
		}
		if err != nil && time.Now().After(deadline) {
			return pending, total, fmt.Errorf("list Deployments: %w", err)
		}
		select {
		case <-ctx.Done():
			return pending, total, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func unobserved(ctx context.Context, cs kubernetes.Interface) (pending, total int, err error) {
	opts := metav1.ListOptions{Limit: 500}
	for {
		l, err := cs.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, opts)
		if err != nil {
			return pending, total, err
		}
		for _, d := range l.Items {
			total++
			if d.Status.ObservedGeneration < d.Generation {
				pending++
			}
		}
		if l.Continue == "" {
			return pending, total, nil
		}
		opts.Continue = l.Continue
	}
}
