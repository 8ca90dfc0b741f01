import type { Redis } from 'ioredis';
import type { BenchOptions } from './bench-options.js';

/** What every scenario is given: the options, the run's Redis, and somewhere to say what it is doing. */
export interface BenchContext {
  options: BenchOptions;
  /** The run's own redis-server (no persistence); scenarios FLUSHALL it before they start. */
  redisUrl: string;
  /** A Postgres server for triton, when `--db postgres`; else triton uses in-memory PGlite. */
  databaseUrl: string | undefined;
  /** A plain connection for seeding and flushing. */
  admin: Redis;
  log(message: string): void;
}

/** The environment a mare-api or triton process of the benchmark reads (silent logs). */
export function serviceEnv(
  ctx: BenchContext,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    LOG_LEVEL: process.env.BENCH_SERVICE_LOG_LEVEL ?? 'silent',
    LOG_FORMAT: 'json',
    REDIS_URL: ctx.redisUrl,
    SSE_MAX_CONNECTIONS: '1000000',
    // Nothing listens here: the SSE and lookup scenarios never fall through to triton-api.
    TRITON_API_URL: 'http://127.0.0.1:9',
    // The benchmark submits far more jobs a minute than a person would.
    SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
    WRITE_RATE_LIMIT_PER_MINUTE: '0',
    SSE_HEARTBEAT_MS: String(ctx.options.heartbeatMs),
    ...(ctx.databaseUrl
      ? { DATABASE_URL: ctx.databaseUrl }
      : { PGLITE_DATA_DIR: 'memory://', TRITON_API_WORKER: 'true' }),
    ...extra,
  };
}
