# syntax=docker/dockerfile:1
# Rampart as a container image: a static binary (CGO_ENABLED=0: the SQLite driver is pure Go) on
# distroless/static, running as the unprivileged "nonroot" user (65532). Build and run:
#
#   docker build -t rampart .
#   docker run --rm --network host rampart        # the demo topology (`rampart run`) on the host's loopback
#   docker run --rm -p 8080:8080 -v "$PWD/my-config:/etc/rampart:ro" rampart gateway -c /etc/rampart/gateway.yaml
#
# The embedded demo topology listens on 127.x.y.z addresses, which inside a container are the
# container's own loopback: publish ports (-p) only with a config whose listeners are 0.0.0.0
# (deploy/kubernetes/config.yaml has one per tier). The version `rampart version` prints comes
# from the module's build information; a binary built from a source tree says "dev".
# The working directory /var/lib/rampart is where relative paths in the config (.rampart/…) land;
# mount a volume there to keep SQLite data and quota files. deploy/kubernetes runs this image.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/rampart ./cmd/rampart && \
    mkdir -p /out/state/.rampart

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rampart /usr/local/bin/rampart
COPY --from=build --chown=65532:65532 /out/state /var/lib/rampart
WORKDIR /var/lib/rampart
USER 65532:65532
EXPOSE 8080 8081 9001 9900
ENTRYPOINT ["/usr/local/bin/rampart"]
CMD ["run", "--log-format", "json"]
