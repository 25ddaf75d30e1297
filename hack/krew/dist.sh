#!/usr/bin/env bash
# dist.sh builds kubectl-urunner for each platform into a krew archive
# (kubectl-urunner_VERSION_OS_ARCH.tar.gz holding the binary) and writes the
# krew manifest for them (hack/krew/urunner.yaml, filled in) into DIST.
# Archives are reproducible: one commit and VERSION give the same sha256.
#
# Usage: hack/krew/dist.sh DIST VERSION URL OS/ARCH...   (make plugin-dist runs it)
#   URL is where the archives will be published (the manifest's uri prefix).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
[[ $# -ge 4 ]] || { echo "usage: $0 DIST VERSION URL OS/ARCH..." >&2; exit 2; }
dist=$1 version=$2 url=${3%/}
shift 3
# krew takes only semantic versions, v-prefixed.
if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "make plugin-dist: VERSION must be a semantic version such as v1.2.3 (krew requires one), got \"$version\"" >&2
	exit 2
fi
epoch=${SOURCE_DATE_EPOCH:-0}
mkdir -p "$dist"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

platforms=""
for p in "$@"; do
	os=${p%%/*} arch=${p#*/}
	exe=kubectl-urunner
	[[ $os == windows ]] && exe+=.exe
	mkdir -p "$work/$os-$arch"
	echo "building kubectl-urunner $version for $os/$arch" >&2
	(cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath \
		-ldflags "-s -w -X main.version=$version" -o "$work/$os-$arch/$exe" ./cmd/kubectl-urunner)
	archive=kubectl-urunner_${version}_${os}_${arch}.tar.gz
	tar -C "$work/$os-$arch" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner -cf - "$exe" |
		gzip -n -9 >"$dist/$archive"
	sha=$(sha256sum "$dist/$archive" | cut -d' ' -f1)
	platforms+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $url/$archive
    sha256: $sha
    bin: $exe
    files:
      - from: $exe
        to: .
"
done

# Everything after the template's own comment, with the blanks filled in.
while IFS= read -r line; do
	case "$line" in
	'#'*) ;;
	@PLATFORMS@) printf '%s' "$platforms" ;;
	*) printf '%s\n' "${line//@VERSION@/$version}" ;;
	esac
done <"$root/hack/krew/urunner.yaml" >"$dist/urunner.yaml"
echo "wrote $dist/urunner.yaml; archives: $#" >&2
