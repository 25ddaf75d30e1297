package main

import (
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/urunner/urunner/registry"
)

// scope is what urunner's CronJob configures it to watch, read from its
// container's variables (the chart writes them as plain values).
type scope struct {
	known bool // false when the CronJob could not be read
	// namespaces are URUNNER_CONF_NAMESPACES (namespaced mode); nil: the
	// namespaces labelled urunner=enable.
	namespaces []string
	// kinds are URUNNER_CONF_WORKLOAD_KINDS; nil: every kind.
	kinds []string
	// registry is the one watched registry host; "" when that cannot be
	// told from the variables (a registries file).
	registry string
}

func scopeOf(cj *batchv1.CronJob) scope {
	if cj == nil {
		return scope{}
	}
	sc := scope{known: true}
	if v, ok := envOf(cj, "URUNNER_CONF_NAMESPACES"); ok && strings.TrimSpace(v) != "" {
		sc.namespaces = list(v)
	}
	if v, ok := envOf(cj, "URUNNER_CONF_WORKLOAD_KINDS"); ok && strings.TrimSpace(v) != "" {
		sc.kinds = list(v)
	}
	_, file := envOf(cj, "URUNNER_CONF_REGISTRIES_FILE")
	if v, ok := envOf(cj, "URUNNER_CONF_CONTAINER_REGISTRY_TO_WATCH"); ok && !file {
		v = strings.TrimPrefix(strings.TrimPrefix(v, "http://"), "https://")
		if h, err := registry.NormalizeHost(v); err == nil {
			sc.registry = h
		}
	}
	return sc
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// watched says whether urunner watches a workload of kind in namespace ns
// and why, as discover chooses: the workload's urunner=disable label, the
// kinds, then the listed namespaces or the namespace's urunner=enable label.
func (sc scope) watched(kind, ns string, optedOut bool, nsEnabled *bool) watchedDoc {
	yes, no := true, false
	switch {
	case optedOut:
		return watchedDoc{&no, "the workload is labelled urunner=disable"}
	case sc.kinds != nil && !slices.Contains(sc.kinds, kind):
		return watchedDoc{&no, kind + " is not in URUNNER_CONF_WORKLOAD_KINDS (" + strings.Join(sc.kinds, ",") + ")"}
	case sc.namespaces != nil && slices.Contains(sc.namespaces, ns):
		return watchedDoc{&yes, "namespace " + ns + " is listed in URUNNER_CONF_NAMESPACES"}
	case sc.namespaces != nil:
		return watchedDoc{&no, "namespace " + ns + " is not in URUNNER_CONF_NAMESPACES (" + strings.Join(sc.namespaces, ",") + ")"}
	case !sc.known:
		return watchedDoc{nil, "urunner's CronJob could not be read (is it in namespaced mode?); namespace " + ns + labelled(nsEnabled)}
	case nsEnabled == nil:
		return watchedDoc{nil, "namespace " + ns + " could not be read: is it labelled urunner=enable?"}
	case *nsEnabled:
		return watchedDoc{&yes, "namespace " + ns + " is labelled urunner=enable"}
	}
	return watchedDoc{&no, "namespace " + ns + " is not labelled urunner=enable"}
}

func labelled(enabled *bool) string {
	switch {
	case enabled == nil:
		return " could not be read"
	case *enabled:
		return " is labelled urunner=enable"
	}
	return " is not labelled urunner=enable"
}
