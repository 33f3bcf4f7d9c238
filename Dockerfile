# syntax=docker/dockerfile:1
# slipway's own image. Its runtime keeps the Go toolchain, which builds run with.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The context leaves .git out, so the binary has no VCS build info: `slipway version`
# reports what these say instead.
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) .
ARG VERSION=""
ARG COMMIT=""
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X main.buildVersion=${VERSION} -X main.buildCommit=${COMMIT}" \
    -o /out/slipway ./cmd/slipway \
    && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/slipway-gocacheprog ./cmd/slipway-gocacheprog

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --create-home nonroot \
    && mkdir -p /var/lib/slipway && chown 65532:65532 /var/lib/slipway
COPY --from=build /usr/local/go /usr/local/go
COPY --from=build /out/slipway /usr/local/bin/slipway
# The go command's cache program in builds (docs/build-cache.md), found beside slipway.
COPY --from=build /out/slipway-gocacheprog /usr/local/bin/slipway-gocacheprog
ENV PATH=/usr/local/go/bin:$PATH \
    SLIPWAY_ADDR=0.0.0.0:8080 \
    SLIPWAY_DATA_DIR=/var/lib/slipway
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/slipway"]
CMD ["serve"]
