# syntax=docker/dockerfile:1
# agrivision: Node 24 runs the TypeScript sources directly (type stripping); the only build is the field
# app's (web/ into web/dist, with the dev dependencies, in its own stage). The deps stage installs
# production dependencies only, from the lockfile.

FROM node:24-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY web ./web
COPY src/image/tokens.ts ./src/image/tokens.ts
RUN node web/build.ts

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the only install script is the `node` devDependency's, which is not installed here.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    # Pin the credential chain to Environment, WorkloadIdentity and ManagedIdentity: no developer tools in production.
    AZURE_TOKEN_CREDENTIALS=prod \
    # Two malloc arenas: libvips' decode threads otherwise each keep freed image buffers (measured in test/load/images.load.ts).
    MALLOC_ARENA_MAX=2 \
    # The embedded SQLite history: mount a volume here (or set DATABASE_URL for PostgreSQL).
    DATA_DIR=/data
WORKDIR /app
RUN mkdir /data && chown node:node /data
VOLUME /data
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
# The SDL the server loads at start-up is every *.graphql under src/, beside its code: COPY src carries it.
COPY src ./src
COPY --from=web /app/web/dist ./web/dist
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "src/server.ts"]
