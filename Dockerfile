# syntax=docker/dockerfile:1
# pushlane container image: a static binary on distroless (no shell, no libc), run as a non-root
# user, with the SQLite file on a volume.
#
#   docker build --build-arg VERSION=$(git describe --tags --dirty 2>/dev/null || echo dev) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t pushlane .
#   docker run -p 8080:8080 -v pushlane-data:/var/lib/pushlane pushlane
#
# Configuration is by environment only (PUSH_ + the key path, see config.yaml), or mount a file
# and pass --config. CI builds the same binary with the same script (deploy/build-static.sh) and
# starts it from an empty directory as this image does.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a change of the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN VERSION=${VERSION} COMMIT=${COMMIT} deploy/build-static.sh /out/pushlane \
 && mkdir -p /out/data

# distroless/static: CA certificates, /etc/passwd with "nonroot" (65532), tzdata; nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pushlane /pushlane
# The volume's mount point, owned by the runtime user so that a fresh named volume is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/pushlane
ENV PUSH_SERVER_ADDR=:8080 \
    PUSH_STORE_PATH=/var/lib/pushlane/push.db \
    PUSH_LOG_FORMAT=json
VOLUME ["/var/lib/pushlane"]
USER 65532:65532
EXPOSE 8080
# No curl or wget in the image: the binary asks its own /healthz (on server.addr, via loopback).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/pushlane", "healthcheck"]
# SIGTERM drains: connections get close code 1001 within server.shutdownTimeout (10s);
# docker stop waits 10s by default, so give it more: docker stop -t 20, or stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/pushlane"]
