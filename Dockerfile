# syntax=docker/dockerfile:1
# The build stage runs the same command as `make build`, which the tests run.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH make build VERSION=${VERSION}

# distroless static: CA certificates, no shell, a non-root user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/urunner /urunner
USER 65532:65532
ENTRYPOINT ["/urunner"]
