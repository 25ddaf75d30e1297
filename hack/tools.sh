#!/usr/bin/env bash
# tools.sh builds the programs the test ground runs (etcd, kube-apiserver,
# kube-controller-manager, helm) from the Go module proxy at pinned versions,
# into .cache/bin. A program is rebuilt only when its pin changes, so only the
# first run pays for the build. The programs asked for are built at once, in
# parallel: their module downloads and links fill the cores the others'
# compiles leave idle. Progress and an estimate are printed every 30 s.
#
# Usage: hack/tools.sh [etcd|kube|helm ...]   (no argument: all of them)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.cache/bin"
mkdir -p "$bin"

KUBE_VERSION=v1.37.2
HELM_VERSION=v3.22.0

# Seconds each tool adds to a build from empty Go build and module caches
# on 2 cores: etcd and kube measured together by `make demo` on 2 cores
# shared with other test runs (done after 2m20s and 11m38s; 12 CPU-minutes
# in all, urunner's build included), helm alone (2m45s, 2m15s of CPU). The
# estimate scales them to this machine's cores. With a warm Go build cache
# each takes seconds: it is only linked, or even the link is cached.
COLD_SECONDS_etcd=140
COLD_SECONDS_kube=560
COLD_SECONDS_helm=165

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

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(etcd kube helm)
todo=()
for t in "${targets[@]}"; do
	case "$t" in
	etcd | kube | helm) if stale "$t"; then todo+=("$t"); fi ;;
	*) echo "tools: unknown tool $t (want etcd, kube or helm)" >&2; exit 2 ;;
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
