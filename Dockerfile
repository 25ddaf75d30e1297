# syntax=docker/dockerfile:1
# For people with Docker. The canonical release image is built by
# `make image` (hack/image), without a daemon, and checked by the tests
# (e2e/image_test.go); this file makes the same layout: /urunner on a
# scratch root with the same root files (hack/image -rootfs), user,
# entrypoint and labels. hack/image/image_test.go keeps them in step.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t urunner \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) .
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same command as `make build`, which the tests run.
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH make build VERSION=${VERSION}
RUN go run ./hack/image -rootfs /rootfs

FROM scratch
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/home/nonroot/ /home/nonroot/
COPY --from=build /src/bin/urunner /urunner
ARG VERSION=dev REVISION=unknown CREATED=1970-01-01T00:00:00Z \
    SOURCE=https://github.com/urunner/urunner LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="urunner" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.created="${CREATED}"
USER 65532:65532
ENTRYPOINT ["/urunner"]
