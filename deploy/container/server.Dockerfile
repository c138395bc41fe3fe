# The control plane: `docker build -f deploy/container/server.Dockerfile .`
# (from the repository root). A small runtime image, run as a non-root user
# with no shell needed. Not built in CI (no container engine runs there);
# the README says so.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p marketer-control-plane --bin marketer-server \
    && strip target/release/marketer-server

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/marketer-server /usr/local/bin/marketer-server
# The data directory (secrets when not given by files, uploaded documents).
WORKDIR /var/lib/marketer
ENV MARKETER_DATA_DIR=/var/lib/marketer \
    MARKETER_LISTEN=0.0.0.0:8080 \
    MARKETER_AGENT_LISTEN=0.0.0.0:8443 \
    MARKETER_LOG_FORMAT=json
EXPOSE 8080 8443
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/marketer-server"]
CMD ["serve"]
