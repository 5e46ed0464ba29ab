# Latch container image.
#
#   docker build -t latch .
#   docker run -p 3000:3000 -v latch-data:/app/data latch            # SQLite in the /app/data volume
#   docker compose up --build                                         # with PostgreSQL, see docker-compose.yml
#
# Database migrations are applied automatically at start-up (src/db/migrate.ts).
#
# The `latch` CLI is on the PATH inside the container:
#   docker compose exec latch latch users create --email you@example.com --admin
#   docker compose exec latch latch clients create --name "My app" --redirect-uri http://localhost:8080/callback
#   docker compose exec latch latch clients list
#   docker run --rm -it -v latch-data:/app/data latch latch users create --email you@example.com --admin
# (`latch` is a link to /app/bin/latch.js; `npx latch ...` and `node bin/latch.js ...` are the same.)

# ---------------------------------------------------------------------------------------------
# Build stage: install everything (dev dependencies included), generate the Prisma clients,
# type-check, then drop the dev dependencies.
# ---------------------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS build

# argon2 and better-sqlite3 are native addons: when no prebuilt binary fits, node-gyp compiles
# them, which needs Python, make and a C++ compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# No Prisma telemetry or update checks during the build.
ENV CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1

# Dependencies first, so this layer is reused while only the sources change. `npm ci` runs the
# postinstall script (scripts/postinstall.js), which applies patches/ to installed packages and
# generates both Prisma clients into src/generated/{sqlite,postgresql}; it needs prisma.config.ts,
# the schemas under prisma/ and patches/.
COPY package.json package-lock.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY patches ./patches
RUN npm ci

COPY . .
# `npm run build` (tsc) compiles to dist/, which the runtime stage runs; it is also the type check.
RUN npm run build \
    && npm prune --omit=dev \
    && npm cache clean --force

# ---------------------------------------------------------------------------------------------
# Runtime stage. Latch runs compiled (dist/): less memory and a faster start than through tsx.
# Views, static files and migrations are found from the project root (src/paths.ts). The `latch`
# CLI still runs from the sources through tsx, so those are kept too.
# ---------------------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime

ENV NODE_ENV=production \
    PORT=3000 \
    DATABASE_URL=file:/app/data/latch.db

WORKDIR /app

# Application files stay owned by root (read-only for the app); only /app/data is writable.
COPY --from=build /app/package.json /app/package-lock.json /app/tsconfig.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/src ./src
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/views ./views
COPY --from=build /app/public ./public
COPY --from=build /app/prisma/migrations ./prisma/migrations

# /app/data holds the SQLite database (default DATABASE_URL). Created owned by `node` so that a
# named or anonymous volume mounted there is writable (a bind mount must be writable by uid 1000).
RUN mkdir -p /app/data \
    && chown node:node /app/data \
    && ln -s /app/bin/latch.js /usr/local/bin/latch
VOLUME ["/app/data"]

USER node
EXPOSE 3000

# Slim images have no curl or wget: use Node's fetch. /healthz answers while the process is up
# (/readyz also checks the database).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# start.js, as `npm start` runs: on Node 22 it restarts the process in place with AsyncContextFrame
# (see README, Starting in production); main.js alone would serve 15-30 % fewer token requests.
CMD ["node", "dist/src/start.js"]
