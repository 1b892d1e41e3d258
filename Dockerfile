# Multi-stage: build with the full toolchain, run on a slim base as a non-root user.
FROM rust:1-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer of their own: built against stand-in sources, so this
# layer is rebuilt only when Cargo.toml or Cargo.lock change, not on every code change.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

COPY src src
COPY migrations migrations
COPY catalog.example.toml ./
# COPY keeps the sources' old modification times: make them newer than the stand-ins'
# build, so cargo rebuilds the crate itself (and embeds the migrations anew).
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home uchat
COPY --from=build /src/target/release/uchat-billing /usr/local/bin/uchat-billing
USER uchat
ENV BIND_ADDR=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
# The image has no curl: the binary checks itself (GET /readyz on BIND_ADDR, exit 0 or 1).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["uchat-billing", "healthcheck"]
ENTRYPOINT ["uchat-billing"]
CMD ["serve"]
