ARG GO_VERSION=1.22
ARG BASE=alpine:3.19
FROM golang:${GO_VERSION} AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go mod download
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM ${BASE} AS runtime
ARG GO_VERSION
LABEL org.opencontainers.image.source="https://example.com/repo" \
      org.opencontainers.image.version=$GO_VERSION
COPY --from=builder --chown=1000:1000 --chmod=0755 /out/app /usr/local/bin/app
USER 1000:1000
EXPOSE 8080/tcp 9090/udp
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD wget -qO- http://localhost:8080/health || exit 1
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--port", "8080"]
