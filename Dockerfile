# hooknorm's container image: a release build with the locked dependencies, then the binary alone
# on a distroless base (glibc and libgcc, no shell, no package manager), running as non-root.
#
#   docker build -t hooknorm:0.1.0 .

# The toolchain the crate asks for (Cargo.toml's rust-version); it brings the C compiler the
# bundled SQLite is built with. protoc is not needed: protobufs compile in pure Rust.
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
# What the build reads, and nothing else (.dockerignore keeps the rest out of the context):
# the manifest's declared bench targets must exist, and the built-in samples come from
# tests/fixtures.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY benches benches
COPY tests/fixtures tests/fixtures
RUN cargo build --release --locked --bin hooknorm \
    && cp target/release/hooknorm /hooknorm

# cc: the dynamic loader, glibc and libgcc_s the binary links; nonroot: user and group 65532,
# which the Helm chart's securityContext runs as.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /hooknorm /usr/local/bin/hooknorm
USER 65532:65532
# gRPC, the webhook ingress, the ops listener (probes, metrics): the defaults the chart uses.
EXPOSE 50051 8080 8081
ENTRYPOINT ["/usr/local/bin/hooknorm"]
CMD ["serve", "--config", "/etc/hooknorm/config/hooknorm.toml"]
