# Multi-stage build: compile with the Rust toolchain, run on a slim Debian as a
# non-root user. The database lives on the /var/lib/pinradius volume.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY dictionaries ./dictionaries
COPY benches ./benches
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/pinradius pinradius \
 && mkdir -p /var/lib/pinradius /etc/pinradius \
 && chown pinradius /var/lib/pinradius
COPY --from=build /src/target/release/pinradius /usr/local/bin/pinradius
COPY config/docker.toml /etc/pinradius/pinradius.toml
USER pinradius
VOLUME /var/lib/pinradius
EXPOSE 1812/udp 1813/udp 8080/tcp
ENTRYPOINT ["pinradius", "--config", "/etc/pinradius/pinradius.toml"]
CMD ["serve"]
