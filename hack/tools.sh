#!/usr/bin/env bash
# tools.sh builds the programs the tests run (etcd, kube-apiserver,
# kube-controller-manager, helm, promtool for the chart's alert rules, cosign
# to sign images for the signature tests, krew to install the kubectl plugin
# from its manifest) from the Go module proxy at pinned
# versions, into .cache/bin; fetches the PrometheusRule CRD the chart tests
# install (crds, into .cache/crds); and unpacks the CNCF distribution registry
# from Debian's docker-registry package (registry). A program is rebuilt only
# when its pin changes, so only the first run pays for the build. The
# programs asked for are built at once, in parallel: their module downloads
# and links fill the cores the others' compiles leave idle. Progress and an
# estimate are printed every 30 s.
#
# Usage: hack/tools.sh [etcd|kube|helm|promtool|cosign|krew|crds|registry ...]   (no argument: all of them)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.cache/bin"
mkdir -p "$bin"

KUBE_VERSION=v1.37.2
HELM_VERSION=v3.22.0
# Prometheus publishes its Go module as v0.X.Y for release 3.X.Y:
# v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMETHEUS_VERSION=3.16.0
# The newest prometheus-operator module the proxy serves; monitoring.coreos.com/v1
# PrometheusRule has not changed shape since.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# Argo Rollouts' newest release whose module the local Go toolchain accepts
# (1.10 asks for a newer Go); the Rollout CRD's shape is the same.
ARGO_ROLLOUTS_VERSION=v1.8.3
# cosign v3 is the current release: it signs in the sigstore bundle format
# (an OCI 1.1 referrer) by default and in the older .sig tag format on
# request, so one binary makes both kinds of signature the tests verify.
COSIGN_VERSION=v3.1.3
# krew, kubectl's plugin manager: the tests install kubectl urunner with it
# from the manifest and archive make plugin-dist writes. v0.4.3 is the
# newest the module proxy serves.
KREW_VERSION=v0.4.3
# Debian's docker-registry package: the CNCF distribution registry 2.8.
REGISTRY_SERIES=2.8

# Seconds each tool adds to a build from empty Go build and module caches
# on 2 cores: etcd and kube measured together by `make demo` on 2 cores
# shared with other test runs (done after 2m20s and 11m38s; 12 CPU-minutes
# in all, urunner's build included), helm alone (2m45s, 2m15s of CPU). The
# estimate scales them to this machine's cores. With a warm Go build cache
# each takes seconds: it is only linked, or even the link is cached.
COLD_SECONDS_etcd=140
COLD_SECONDS_kube=560
COLD_SECONDS_helm=165
COLD_SECONDS_promtool=395
COLD_SECONDS_cosign=300
# krew from an empty build cache: 1m15s measured (29 s of CPU, the rest
# module downloads) on the 2 cores shared with a test run.
COLD_SECONDS_krew=75

# stamp prints what a build depends on, so that a changed pin rebuilds.
stamp() { cat "$@" | sha256sum | cut -c1-16; }

fresh() { # fresh NAME STAMP: the binary exists and was built from STAMP
	[[ -x "$bin/$1" && -f "$bin/.$1.stamp" && "$(cat "$bin/.$1.stamp")" == "$2" ]]
}

log() { printf 'tools: %s\n' "$*" >&2; }

# programs_TOOL: the binaries a tool's build makes.
programs_etcd() { echo etcd; }
programs_kube() { echo kube-apiserver kube-controller-manager; }
programs_helm() { echo helm; }
programs_promtool() { echo promtool; }
programs_cosign() { echo cosign; }
programs_krew() { echo krew; }

kube_ldflags() {
	local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
	local ld="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$ld"
}

stamp_etcd() { stamp "$root/hack/tools/etcd/go.mod" "$root/hack/tools/etcd/go.sum"; }
# The stamp covers the pins and the flags, not this script: changing how
# the tools are built must not rebuild the API server.
stamp_kube() { kube_ldflags | stamp "$root/hack/tools/kube/go.mod" "$root/hack/tools/kube/go.sum" /dev/stdin; }
stamp_helm() { echo "$HELM_VERSION" | stamp /dev/stdin; }
promtool_ldflags() {
	local pkg=github.com/prometheus/common/version
	echo "-s -w -X $pkg.Version=$PROMETHEUS_VERSION -X $pkg.Branch=HEAD -X $pkg.Revision=$PROMETHEUS_MODULE_VERSION"
}
stamp_promtool() { echo "$PROMETHEUS_MODULE_VERSION $(promtool_ldflags)" | stamp /dev/stdin; }
stamp_cosign() { echo "$COSIGN_VERSION" | stamp /dev/stdin; }
stamp_krew() { echo "$KREW_VERSION" | stamp /dev/stdin; }

stale() { # stale TOOL: one of its programs is missing or from another pin
	local s p; s=$("stamp_$1")
	for p in $("programs_$1"); do
		fresh "$p" "$s" || return 0
	done
	return 1
}

# Each build writes into a fresh directory and moves the binaries in place,
# so that a test ground running the old binary never sees a half-written one.
install_built() { # install_built TOOL DIR
	local s p; s=$("stamp_$1")
	for p in $("programs_$1"); do
		mv -f "$2/$p" "$bin/$p"
		echo "$s" >"$bin/.$p.stamp"
	done
}

build_etcd() {
	local out="$1"
	(cd "$root/hack/tools/etcd" && CGO_ENABLED=0 go build -trimpath -o "$out/etcd" .)
}

# One go build for both commands: the packages they share are compiled
# once and the two links run side by side.
build_kube() {
	local out="$1"
	(cd "$root/hack/tools/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$(kube_ldflags)" -o "$out/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
}

build_helm() {
	local out="$1"
	(cd "$root" && CGO_ENABLED=0 GOBIN="$out" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
}

# promtool checks and unit-tests the chart's PrometheusRule (e2e/alerts_test.go).
# Its go.mod has no replace directive, so go install at the pinned module
# version builds exactly that release's dependency graph.
build_promtool() {
	local out="$1"
	(cd "$root" && CGO_ENABLED=0 GOBIN="$out" go install -trimpath -ldflags "$(promtool_ldflags)" "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION")
}

build_cosign() {
	local out="$1"
	(cd "$root" && CGO_ENABLED=0 GOBIN="$out" go install -trimpath -ldflags "-s -w" "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION")
}

build_krew() {
	local out="$1"
	(cd "$root" && CGO_ENABLED=0 GOBIN="$out" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION")
}

# fetch_crds copies the CRDs the tests install out of their projects' Go
# modules: prometheus-operator's PrometheusRule (the chart's alerts are
# validated against its real schema) and Argo Rollouts' Rollout (urunner
# restarts Rollouts). Downloaded outside urunner's module, so urunner's
# go.mod and go.sum stay untouched. Seconds.
fetch_crds() {
	fetch_crd "github.com/prometheus-operator/prometheus-operator" "$PROMETHEUS_OPERATOR_VERSION" \
		example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_prometheusrules.yaml
	fetch_crd "github.com/argoproj/argo-rollouts" "$ARGO_ROLLOUTS_VERSION" manifests/crds/rollout-crd.yaml argoproj.io_rollouts.yaml
}

# fetch_crd module version path-in-module file
fetch_crd() {
	local module="$1" version="$2" path="$3" f="$4" dir="$root/.cache/crds"
	local s; s=$(echo "$version $f" | stamp /dev/stdin)
	[[ -f "$dir/$f" && -f "$dir/.$f.stamp" && "$(cat "$dir/.$f.stamp")" == "$s" ]] && return
	log "fetching $f from $module $version"
	local mod
	mod=$(cd / && GOFLAGS=-mod=mod go mod download -json "$module@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n "$mod" ]] || { echo "tools: cannot download $module $version" >&2; exit 1; }
	mkdir -p "$dir"
	install -m 0644 "$mod/$path" "$dir/$f"
	echo "$s" >"$dir/.$f.stamp"
}

# fetch_registry unpacks the CNCF distribution registry 2.8 (Debian's
# docker-registry package) into $bin/docker-registry: the registry whose
# real notifications the webhook receiver's end-to-end test and benchmark
# receive. apt-get download and dpkg -x need no root and install nothing;
# the package's own configuration and service files are not used. Seconds.
fetch_registry() {
	local s; s=$(echo "docker-registry $REGISTRY_SERIES" | stamp /dev/stdin)
	fresh docker-registry "$s" && return
	log "unpacking docker-registry (distribution $REGISTRY_SERIES) from Debian's package"
	local tmp; tmp=$(mktemp -d)
	# Without package lists (a fresh machine) apt knows no candidate yet.
	if ! (cd "$tmp" && apt-get download -q docker-registry >/dev/null 2>&1); then
		log "apt-get download failed; updating the package lists once"
		apt-get update -q >/dev/null
		(cd "$tmp" && apt-get download -q docker-registry >/dev/null)
	fi
	dpkg -x "$tmp"/docker-registry_*.deb "$tmp/x"
	local v; v=$("$tmp/x/usr/bin/docker-registry" --version)
	if [[ "$v" != *" $REGISTRY_SERIES."* ]]; then
		echo "tools: docker-registry is \"$v\", want distribution $REGISTRY_SERIES" >&2
		rm -rf "$tmp"
		exit 1
	fi
	install -m 0755 "$tmp/x/usr/bin/docker-registry" "$bin/docker-registry"
	rm -rf "$tmp"
	echo "$s" >"$bin/.docker-registry.stamp"
}

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(etcd kube helm promtool cosign krew crds registry)
todo=()
for t in "${targets[@]}"; do
	case "$t" in
	etcd | kube | helm | promtool | cosign | krew) if stale "$t"; then todo+=("$t"); fi ;;
	crds | registry) "fetch_$t" ;;
	*) echo "tools: unknown tool $t (want etcd, kube, helm, promtool, cosign, krew, crds or registry)" >&2; exit 2 ;;
	esac
done
[[ ${#todo[@]} -gt 0 ]] || exit 0

cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
cold=0 names=""
for t in "${todo[@]}"; do
	v="COLD_SECONDS_$t"; cold=$((cold + ${!v}))
	names+="${names:+, }$(programs_$t | sed 's/ /, /g')"
done
# The builds are CPU-bound: on 2 cores, together they take about the sum
# of their times alone.
estimate=$((cold * 2 / (cores < 2 ? 2 : cores)))
log "building $names $([[ ${#todo[@]} -gt 1 ]] && echo "in parallel ")(pinned in hack/tools, see hack/tools.sh)"
log "from an empty Go build cache about $(duration "$estimate") on $cores cores ($(duration "$cold") measured on 2), seconds with a warm one"

work=$(mktemp -d "$bin/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
pids=()
for t in "${todo[@]}"; do
	mkdir "$work/$t"
	# The CPU time (user and system, children included) says how much work
	# a build was, whatever else ran on the machine.
	(
		set +e # errexit would end the subshell before time reports
		TIMEFORMAT='%U %S'
		{ time "build_$t" "$work/$t" >"$work/$t.log" 2>&1; } 2>"$work/$t.cpu"
	) &
	pids+=($!)
done

failed=0 next=30
running=${#todo[@]}
while [[ $running -gt 0 ]]; do
	sleep 1
	for i in "${!todo[@]}"; do
		pid=${pids[$i]}
		[[ -n "$pid" ]] || continue
		kill -0 "$pid" 2>/dev/null && continue
		t=${todo[$i]}
		pids[i]=""
		running=$((running - 1))
		if wait "$pid"; then
			install_built "$t" "$work/$t"
			cpu=$(awk '{printf "%d", $1 + $2}' "$work/$t.cpu")
			log "built $(programs_$t) in $(duration $((SECONDS - start))) (CPU time $(duration "$cpu"))"
		else
			failed=1
			log "building $(programs_$t) failed:"
			cat "$work/$t.log" >&2
		fi
	done
	elapsed=$((SECONDS - start))
	if [[ $running -gt 0 && $elapsed -ge $next ]]; then
		next=$((next + 30))
		still=""
		for i in "${!todo[@]}"; do
			[[ -n "${pids[$i]}" ]] && still+="${still:+, }$(programs_${todo[$i]} | sed 's/ /, /g')"
		done
		log "still building $still; $(duration "$elapsed") elapsed, about $(duration "$estimate") in all from an empty cache"
	fi
done
exit "$failed"
