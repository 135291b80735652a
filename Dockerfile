# AgentHub in a container. Two images from this file:
#
#   docker build -t agenthub .                 the default: the static binary on node:22-bookworm-slim
#                                              as the `node` user, so npm servers and npx work
#   docker build --target slim -t agenthub:slim .
#                                              FROM scratch, the static binary alone (remote MCP
#                                              servers and Ollama, none configured; ~5 MB)
#
# Both compile the binary in the `build` stage. To use one built already (`make release`), add
# `--build-arg BINARY=prebuilt`: the `build` stage is then skipped and no Rust image is needed;
# the slim image then needs no base image at all (how the tests build it, with podman, offline).
#
# Run:   docker run -p 127.0.0.1:9090:9090 -e AGENTHUB_TOKEN="$(openssl rand -hex 24)" -v agenthub:/data agenthub
# Inside a container the hub listens on 0.0.0.0, so a token (16+ characters) is required.
# Config lives in /data/config/agenthub, npm installs in /data/npm, npm's cache in /data/.npm.

# `build` (compile here) or `prebuilt` (target/x86_64-unknown-linux-gnu/release/agenthub from the context).
ARG BINARY=build

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock README.md ./
COPY src ./src
COPY assets ./assets
COPY configs ./configs
COPY tests ./tests
COPY benches ./benches
# Built for size as `make release` builds it (the hub's own code at opt-level "s").
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --release --config 'profile.release.package.agenthub.opt-level="s"' \
      --bin agenthub --target x86_64-unknown-linux-gnu \
 && strip target/x86_64-unknown-linux-gnu/release/agenthub \
 && cp target/x86_64-unknown-linux-gnu/release/agenthub /agenthub

FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-gnu/release/agenthub /agenthub

FROM ${BINARY} AS binary

# The static binary alone (rustls carries its own web PKI roots). No shell, no npx: remote
# servers and Ollama only, so it ships an empty servers file (the embedded defaults are npx
# servers it could never start); servers added through the API are saved there. USER 65532
# owns /data.
FROM scratch AS slim
COPY --from=binary /agenthub /agenthub
COPY --chown=65532:65532 assets/container/data/ /data/
COPY --chown=65532:65532 assets/container/slim/ /data/
USER 65532:65532
ENV AGENTHUB_HOST=0.0.0.0 \
    AGENTHUB_PORT=9090 \
    AGENTHUB_DATA_DIR=/data \
    XDG_CONFIG_HOME=/data/config \
    HOME=/data \
    OLLAMA_HOST=host.docker.internal:11434
VOLUME ["/data"]
EXPOSE 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/agenthub", "healthcheck"]
ENTRYPOINT ["/agenthub"]
CMD ["serve"]

# The default image (the last stage): npm servers run through node and npx as the `node` user,
# whose home, npm cache and installs are all on the /data volume. As PID 1 the hub reaps the
# orphans npx leaves (compose also sets `init: true`).
FROM node:22-bookworm-slim AS default
COPY --from=binary /agenthub /usr/local/bin/agenthub
COPY --chown=node:node assets/container/data/ /data/
USER node
ENV AGENTHUB_HOST=0.0.0.0 \
    AGENTHUB_PORT=9090 \
    AGENTHUB_DATA_DIR=/data \
    XDG_CONFIG_HOME=/data/config \
    HOME=/data \
    npm_config_cache=/data/.npm \
    OLLAMA_HOST=host.docker.internal:11434
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["agenthub", "healthcheck"]
ENTRYPOINT ["agenthub"]
CMD ["serve"]
