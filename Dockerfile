# The pinradius image: a slim Debian, a non-root user, the database on the
# /var/lib/pinradius volume, a health check by Status-Server.
#
# `docker build .` (and `docker compose up --build`) compiles from source with the
# Rust toolchain image: the default. CI, which cannot pull that image, builds the same
# runtime from a binary compiled on the host: it first makes a one-file image holding
# it at /src/target/release/pinradius (`FROM scratch` + `COPY`), then builds this file
# with BuildKit and `--build-arg BINARY=<that image>`, so the toolchain stage is
# never used (BuildKit builds only the stages the target needs).
ARG BINARY=build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY dictionaries ./dictionaries
COPY benches ./benches
# Stripped: the debug info release builds keep for profiling is not needed here.
RUN cargo build --release --locked && strip target/release/pinradius

FROM ${BINARY} AS binary

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/pinradius pinradius \
 && mkdir -p /var/lib/pinradius /etc/pinradius \
 && chown pinradius /var/lib/pinradius
COPY --from=binary /src/target/release/pinradius /usr/local/bin/pinradius
COPY config/docker.toml /etc/pinradius/pinradius.toml
USER pinradius
VOLUME /var/lib/pinradius
EXPOSE 1812/udp 1813/udp 8080/tcp
# A Status-Server from inside the container (the config's loopback client).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["pinradius", "--config", "/etc/pinradius/pinradius.toml", "probe"]
ENTRYPOINT ["pinradius", "--config", "/etc/pinradius/pinradius.toml"]
CMD ["serve"]
