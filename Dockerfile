# meridian: multi-stage build of the production binary, scripts/pgo's profile-guided
# build (README "Performance" measures this build).
# Build:  docker build -t meridian .
# Run:    docker run -p 8080:8080 -p 9901:9901 -v $PWD/config:/etc/meridian:ro meridian
# The build stage needs nothing beyond the Rust image and rustup's llvm-tools (for
# llvm-profdata): the C code in the tree (ring, aws-lc-sys) builds with its cc, and
# the training load (src/bin/meridian-train.rs) is meridian's own, on loopback.
# tests/dockerfile.rs assembles this build context (the COPY lines below, less
# .dockerignore) and runs `scripts/pgo --check` in it offline, without cmake, so a
# path the build needs cannot go missing unnoticed.
FROM rust:1.95-bookworm AS build
RUN rustup component add llvm-tools
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# hyper with meridian's patches ([patch.crates-io] in Cargo.toml; docs/hyper/).
COPY vendor ./vendor
COPY src ./src
# Cargo.toml names the benches; the manifest does not load without them.
COPY benches ./benches
# The training's GeoIP database (the bundled test one) and the build itself.
COPY geoip/test-city.mmdb ./geoip/
COPY scripts/pgo ./scripts/
RUN scripts/pgo

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin meridian
COPY --from=build /src/target/pgo/meridian /usr/local/bin/meridian
COPY config/meridian.yaml /etc/meridian/meridian.yaml
USER meridian
ENV MERIDIAN_CONFIG=/etc/meridian/meridian.yaml
# Proxy listener and admin listener of the reference config.
EXPOSE 8080 8443 9901
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fsS http://127.0.0.1:9901/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["meridian"]
CMD ["run"]
