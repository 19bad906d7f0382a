# syntax=docker/dockerfile:1

# Build stage: the full dependency tree, to type-check everything and compile src/ to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) needs the sources, copied below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY web ./web
COPY test ./test
COPY bench ./bench
COPY emails ./emails
COPY migrations ./migrations
RUN npx tsc --noEmit && npm run build

# Production dependencies only, installed apart so no dev tool reaches the runtime image.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim AS runtime
# npm runs scripts through /bin/sh, and Debian's dash neither execs the command nor passes
# SIGTERM on, so `docker stop` would kill the service instead of letting it drain; bash execs.
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_SCRIPT_SHELL=/bin/bash
WORKDIR /app
# Sources stay owned by root so the service cannot rewrite its own code; only DATA_DIR is writable.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
# Compiled JavaScript: workers run without a TypeScript loader (about 60 MB less each).
COPY --from=build /app/dist ./dist
COPY --from=build /app/emails ./emails
COPY --from=build /app/migrations ./migrations
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 3000
# API and worker in one process, as `npm start` runs them (without its build step: dist/ is
# built above); docker-compose.yml runs `npm run start:api` and `npm run start:worker` instead.
CMD ["npm", "run", "start:all"]
