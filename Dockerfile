# One image for every part; the command picks the part (see docker-compose.yml).
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    LOG_FORMAT=json

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY src ./src
# The command line, for `npx triton-events keys …` where the services run.
COPY bin ./bin

USER node
EXPOSE 8000 16000
# SIGTERM reaches Node directly: open SSE streams are told to reconnect, running jobs finish.
CMD ["node", "--import", "tsx", "src/mare/main-api.ts"]
