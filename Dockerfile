# misp-domaintools: multi-stage build, small non-root runtime image.
#   docker build -t misp-domaintools .
#   docker run --rm -p 6666:6666 -e DOMAINTOOLS_USERNAME=… -e DOMAINTOOLS_API_KEY=… misp-domaintools
#   docker run --rm -p 6666:6666 misp-domaintools --demo
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY src src
COPY modules modules
COPY data data
RUN cargo build --release --locked -p misp-domaintools && strip target/release/misp-domaintools

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home misp-domaintools
COPY --from=build /src/target/release/misp-domaintools /usr/local/bin/misp-domaintools
USER 10001
# Listen on every interface inside the container (the binary's default is loopback only).
ENV MISP_DOMAINTOOLS_LISTEN=0.0.0.0 \
    MISP_DOMAINTOOLS_PORT=6666
EXPOSE 6666
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["misp-domaintools", "healthcheck"]
ENTRYPOINT ["misp-domaintools"]
