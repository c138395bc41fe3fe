# The edge agent: `docker build -f deploy/container/agent.Dockerfile .`
# It dials out to the control plane and talks to Ollama on the customer's
# network; its state (identity, outbox, document index) lives in the volume
# at /var/lib/marketer-agent, which must persist and be backed up (README,
# "Backups"). Not built in CI (no container engine runs there).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p marketer-edge-agent --bin marketer-agent \
    && strip target/release/marketer-agent

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/marketer-agent /usr/local/bin/marketer-agent
ENV MARKETER_AGENT_HOME=/var/lib/marketer-agent
VOLUME ["/var/lib/marketer-agent"]
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/marketer-agent"]
CMD ["run"]
