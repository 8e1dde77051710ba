# One image for the API, the worker and the migrations. TypeScript runs directly on Node 24 (type stripping): there
# is no build step, the image holds the source and the production node_modules only.
#   API:        docker run IMAGE                       (CMD service/server.ts, /healthz on PORT 3000)
#   worker:     docker run -e HEALTHCHECK_PORT=9465 IMAGE worker/main.ts
#   migrations: docker run --entrypoint node IMAGE ops/migrate.ts
# The base is node:24-bookworm-slim pinned by digest (Node 24.18.0 when pinned); bump tag and digest together. A
# machine without a registry builds FROM its own Node base instead (compose/local-images.yml passes
# NODE_IMAGE=opsdrill/node:24.21.0, built by `npm run stack -- images`).
# No `# syntax=` line: it makes BuildKit pull its Dockerfile frontend from a registry; the built-in one has all this
# file uses.
ARG NODE_IMAGE=node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; native modules (@node-rs/argon2, msgpackr-extract) ship prebuilt binaries.
# Behind a TLS-inspecting proxy npm needs the proxy's CA: pass it as a build secret (`--secret id=ca,src=<bundle>`,
# or compose's build.secrets), mounted for this step only and never written into a layer. Without it, npm uses
# Node's own CA list.
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
    && npm ci --omit=dev --no-audit --no-fund --loglevel=error \
    && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# Files stay owned by root and the process runs as the image's `node` user, given by number (1000) so Kubernetes
# runAsNonRoot can verify it: the app cannot rewrite its own code, and it runs on a read-only root filesystem.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY common ./common
COPY migrations ./migrations
COPY ops ./ops
COPY service ./service
COPY worker ./worker
USER 1000:1000
EXPOSE 3000 9464 9465
# The API's liveness endpoint is on PORT (3000); the worker's is on its metrics listener: set HEALTHCHECK_PORT=9465.
ENV HEALTHCHECK_PORT=3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.HEALTHCHECK_PORT}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Telemetry starts before the app so auto-instrumentation can patch http, pg and ioredis as they load.
ENTRYPOINT ["node", "--import", "./common/telemetry/instrumentation.ts"]
CMD ["service/server.ts"]
