# Multi-stage: build with the full toolchain, run on a slim base as a non-root user.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY catalog.example.toml ./
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home uchat
COPY --from=build /src/target/release/uchat-billing /usr/local/bin/uchat-billing
USER uchat
ENV BIND_ADDR=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["uchat-billing"]
CMD ["serve"]
