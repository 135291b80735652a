# AgentHub in a container: a static binary on a small Node image (MCP servers from npm run
# through node/npx). Build: docker build -t agenthub .
# Run:   docker run -p 9090:9090 -e AGENTHUB_TOKEN="$(openssl rand -hex 24)" -v agenthub:/data agenthub
# Inside a container the hub must listen beyond loopback, so a token (16+ characters) is required.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY configs ./configs
COPY tests ./tests
COPY benches ./benches
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --release --bin agenthub --target x86_64-unknown-linux-gnu \
 && strip target/x86_64-unknown-linux-gnu/release/agenthub

FROM node:20-bookworm-slim
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/agenthub /usr/local/bin/agenthub
RUN useradd --create-home --uid 10001 agenthub && mkdir -p /data/config && chown -R agenthub /data
USER agenthub
ENV AGENTHUB_HOST=0.0.0.0 \
    AGENTHUB_PORT=9090 \
    AGENTHUB_DATA_DIR=/data \
    XDG_CONFIG_HOME=/data/config \
    OLLAMA_HOST=host.docker.internal:11434
EXPOSE 9090
VOLUME ["/data"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["agenthub"]
CMD ["serve"]
