# Timescope service image (used by docker-compose.yml).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the image talks to DATABASE_URL and never needs the embedded PostgreSQL.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY scripts scripts
COPY src src
COPY db db
# Types checked, then the same build as `make build`.
RUN ./node_modules/.bin/tsc -p tsconfig.json --noEmit && node scripts/build.mjs && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
COPY db db
# The live page at / (static files read at start from /app/web; uPlot comes from node_modules).
COPY web web
# DATA_DIR: asynchronous export files (EXPORT_DIR defaults to DATA_DIR/exports).
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME /app/data
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=6 CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/main.js"]
