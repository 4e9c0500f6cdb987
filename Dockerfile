# meridian: multi-stage build. The build stage needs cmake (Pingora builds zlib-ng from C).
# Build:  docker build -t meridian .
# Run:    docker run -p 8080:8080 -p 9901:9901 -v $PWD/config:/etc/meridian:ro meridian
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin meridian

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin meridian
COPY --from=build /src/target/release/meridian /usr/local/bin/meridian
COPY config/meridian.yaml /etc/meridian/meridian.yaml
USER meridian
ENV MERIDIAN_CONFIG=/etc/meridian/meridian.yaml
# Proxy listener and admin listener of the reference config.
EXPOSE 8080 8443 9901
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fsS http://127.0.0.1:9901/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["meridian"]
CMD ["run"]
