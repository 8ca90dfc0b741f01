import path from 'node:path';
import { z } from 'zod';
import { redactCredentials } from './error-serializer.js';
import { parseSentinelUrl } from './redis.js';

/**
 * Every environment variable the system reads, validated once at start through this one
 * schema. Nothing else reads `process.env`. `.env.example` lists the same variables.
 */

const port = (fallback: number) => z.coerce.number().int().min(1).max(65_535).default(fallback);
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const nonNegativeInt = (fallback: number) =>
  z.coerce.number().int().nonnegative().default(fallback);
/** A single server or a cluster node (`redis://`, `rediss://`), or a Sentinel setup. */
const redisUrl = z.string().superRefine((u, ctx) => {
  if (u.startsWith('redis+sentinel://')) {
    try {
      parseSentinelUrl(u);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `is a Sentinel URL that ${(err as Error).message}` });
    }
    return;
  }
  if (!URL.canParse(u) || !/^rediss?:$/.test(new URL(u).protocol)) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a redis://, rediss:// or redis+sentinel:// URL',
    });
  }
});
const postgresUrl = z
  .url()
  .refine(
    (u) => /^postgres(ql)?:$/.test(new URL(u).protocol),
    'must be a postgres:// or postgresql:// URL',
  );

// --- Template generator (GENERATOR, OPENAI_*) --------------------------------------------------

const GeneratorEnv = z.object({
  /** Who writes templates: `builtin` (no network) or `openai` (any OpenAI-compatible server). */
  GENERATOR: z.enum(['builtin', 'openai']).default('builtin'),
  /** Base URL of the chat-completions API (OpenAI, Ollama, vLLM…). */
  OPENAI_BASE_URL: z
    .url()
    .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http:// or https:// URL')
    .default('https://api.openai.com/v1'),
  /** Sent as a Bearer token; local servers need none. Never logged. */
  OPENAI_API_KEY: z.string().optional(),
  /** Required with GENERATOR=openai. */
  OPENAI_MODEL: z.string().optional(),
  /** Longest wait for the model's first byte, and between two pieces of its answer. */
  OPENAI_TIMEOUT_MS: positiveInt(60_000),
  OPENAI_TEMPERATURE: z.coerce.number().min(0).max(2).optional(),
  /** Most tokens the model may write per template. */
  OPENAI_MAX_TOKENS: z.coerce.number().int().positive().optional(),
  /** Retries of a request answered 429 or 5xx, or cut off, per template. */
  OPENAI_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(3),
});

/** Which generator writes templates, and how it reaches its language model. */
export type GeneratorConfig =
  | { type: 'builtin' }
  | {
      type: 'openai';
      baseUrl: string;
      apiKey: string | undefined;
      model: string;
      timeoutMs: number;
      temperature: number | undefined;
      maxTokens: number | undefined;
      maxRetries: number;
    };

function generatorConfig(e: z.infer<typeof GeneratorEnv>): GeneratorConfig {
  if (e.GENERATOR === 'builtin') return { type: 'builtin' };
  if (e.OPENAI_MODEL === undefined) {
    throw new ConfigError('Invalid configuration: OPENAI_MODEL: required when GENERATOR=openai');
  }
  return {
    type: 'openai',
    baseUrl: e.OPENAI_BASE_URL.replace(/\/+$/, ''),
    apiKey: e.OPENAI_API_KEY,
    model: e.OPENAI_MODEL,
    timeoutMs: e.OPENAI_TIMEOUT_MS,
    temperature: e.OPENAI_TEMPERATURE,
    maxTokens: e.OPENAI_MAX_TOKENS,
    maxRetries: e.OPENAI_MAX_RETRIES,
  };
}

// ------------------------------------------------------------------------------------------------

/** The Redis variables of the environment, parsed. */
interface RedisEnv {
  REDIS_URL?: string | undefined;
  REDIS_HOST?: string | undefined;
  REDIS_PORT?: number | undefined;
  REDIS_DB?: number | undefined;
  REDIS_PASSWORD?: string | undefined;
}

const bare = (host: string) => host.replace(/^\[|\]$/g, '').toLowerCase();

/**
 * The Redis every part uses: REDIS_URL, or the URL that REDIS_HOST, REDIS_PORT, REDIS_DB and
 * REDIS_PASSWORD make. Both may be given if they agree; if they do not, start-up stops rather
 * than guess which one was meant.
 */
function redisOf(e: RedisEnv): { url: string; from: string } | undefined {
  const parts = (['REDIS_HOST', 'REDIS_PORT', 'REDIS_DB', 'REDIS_PASSWORD'] as const).filter(
    (name) => e[name] !== undefined,
  );
  if (parts.length === 0) {
    return e.REDIS_URL === undefined ? undefined : { url: e.REDIS_URL, from: 'REDIS_URL' };
  }
  const host = e.REDIS_HOST ?? '127.0.0.1';
  const port = e.REDIS_PORT ?? 6379;
  const db = e.REDIS_DB ?? 0;
  const password = e.REDIS_PASSWORD ?? '';
  if (e.REDIS_URL?.startsWith('redis+sentinel://')) {
    throw new ConfigError(
      `Invalid configuration: REDIS_URL names Sentinel, which ${parts.join(', ')} cannot describe; set only REDIS_URL`,
    );
  }
  if (e.REDIS_URL !== undefined) {
    const u = new URL(e.REDIS_URL);
    const inUrl = {
      REDIS_HOST: bare(u.hostname),
      REDIS_PORT: u.port === '' ? 6379 : Number(u.port),
      REDIS_DB: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
      REDIS_PASSWORD: decodeURIComponent(u.password),
    };
    const inParts = {
      REDIS_HOST: bare(host),
      REDIS_PORT: port,
      REDIS_DB: db,
      REDIS_PASSWORD: password,
    };
    for (const name of parts) {
      if (inUrl[name] === inParts[name]) continue;
      const why =
        name === 'REDIS_PASSWORD'
          ? 'the passwords differ'
          : `REDIS_URL says ${inUrl[name]}, ${name} says ${inParts[name]}`;
      throw new ConfigError(
        `Invalid configuration: REDIS_URL and ${name} disagree (${why}); set only one of them`,
      );
    }
    return { url: e.REDIS_URL, from: `REDIS_URL, ${parts.join(', ')}` };
  }
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const auth = password ? `:${encodeURIComponent(password)}@` : '';
  return { url: `redis://${auth}${hostPart}:${port}/${db}`, from: parts.join(', ') };
}

const EnvSchema = z.object({
  ...GeneratorEnv.shape, // GENERATOR and OPENAI_*, above
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `auto`: human-readable on a terminal, JSON otherwise. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** Address both HTTP servers bind to. */
  HOST: z.string().min(1).default('127.0.0.1'),
  /** Where the embedded Redis and PGlite keep their files. */
  DATA_DIR: z.string().min(1).default('.data'),
  /** Redis for the queue, events and (by default) the gateway's cache. Unset: `npm start` runs one. */
  REDIS_URL: redisUrl.optional(),
  /**
   * The same Redis named in parts, as the original triton configured it: any of these, instead of
   * REDIS_URL (or agreeing with it), points every part at 127.0.0.1:6379, database 0, no
   * password, except for what they say.
   */
  REDIS_HOST: z
    .string()
    .refine(
      // One colon is a port (`cache:6379`); an IPv6 address has several.
      (h) => /^[^\s/@?#]+$/.test(h) && !/^[^:]*:[^:]*$/.test(h),
      'must be a host name or address, without scheme or port (REDIS_PORT is the port)',
    )
    .optional(),
  REDIS_PORT: z.coerce.number().int().min(1).max(65_535).optional(),
  REDIS_DB: z.coerce.number().int().nonnegative().optional(),
  /** Never logged. */
  REDIS_PASSWORD: z.string().optional(),
  /** Prepended to every Redis key and channel, so deployments can share one Redis. */
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]*$/, 'may hold only letters, digits and : _ . -')
    .default(''),
  /** Port of the Redis that `npm start` runs when REDIS_URL is unset. */
  EMBEDDED_REDIS_PORT: port(6379),
  /**
   * Which peers may say who the client is (X-Forwarded-For): `false` (none: the socket's address
   * counts), `true`, or addresses and ranges (`loopback`, `uniquelocal`, `10.0.0.0/8`, …) of the
   * proxies in front. Rate limits count per client.
   */
  TRUST_PROXY: z.string().min(1).default('false'),
  /**
   * Shared by mare-api and triton-api: mare-api sends it with the end user's address, so that
   * triton-api counts the user's requests, not the gateway's, without trusting X-Forwarded-For
   * from anyone else. `npm start` makes one up when unset. Never logged.
   */
  GATEWAY_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Largest accepted request body, in bytes. */
  BODY_LIMIT_BYTES: positiveInt(64 * 1024),
  /**
   * `on`: both APIs require an API key (`Authorization: Bearer …`) and show each tenant only its
   * own records. `off`: anyone who reaches them may use them. Unset is off, but an API that would
   * bind an address other machines reach (HOST) refuses to start until this is set.
   */
  AUTH: z.enum(['on', 'off']).optional(),
  /**
   * Origins whose pages may call the APIs from a browser: `*` (any; only with AUTH=off) or a
   * comma-separated list (`https://app.example.com,https://admin.example.com`). Unset: `*` with
   * auth off, none with auth on.
   */
  CORS_ORIGINS: z
    .string()
    .transform((value) => value.split(',').map((origin) => origin.trim()))
    .refine(
      (origins) => (origins.length === 1 && origins[0] === '*') || origins.every(isOrigin),
      'must be * or a comma-separated list of origins such as https://app.example.com',
    )
    .optional(),
  /** Bearer token that `/metrics` requires (16 characters or more); unset, /metrics is open. Never logged. */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),

  TRITON_API_PORT: port(8000),
  /** A Postgres server. Unset: embedded PGlite under DATA_DIR (single process). */
  DATABASE_URL: postgresUrl.optional(),
  /** Where embedded PGlite keeps its data; `memory://` keeps it in memory. */
  PGLITE_DATA_DIR: z.string().min(1).optional(),
  /** Run a worker inside triton-api: `auto` does so exactly when the database is embedded. */
  TRITON_API_WORKER: z.enum(['auto', 'true', 'false']).default('auto'),
  /**
   * Serve the queue UI at /admin/queues on triton-api. It has no login yet: `auto` serves it
   * exactly when HOST is a loopback address, so that only this machine reaches it.
   */
  QUEUE_UI: z.enum(['auto', 'true', 'false']).default('auto'),
  WORKER_CONCURRENCY: positiveInt(4),
  /** A separate worker serves /health, /ready and /metrics on this port (0: not at all). */
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  /** Time the built-in generator spends on each of a job's 7 templates. */
  GENERATION_STEP_MS: nonNegativeInt(285),
  /** Longest a template's text waits in the worker before it is published as a `job:delta`. */
  DELTA_INTERVAL_MS: positiveInt(100),
  /** Attempts per job for retryable failures (bad input is never retried). */
  JOB_ATTEMPTS: positiveInt(3),
  /** A running job that outlives this is failed with a clear message. */
  JOB_TIMEOUT_MS: positiveInt(10 * 60_000),
  /** How long a worker's lock on a job lasts without renewal; a dead worker's job is retried after it. */
  JOB_LOCK_MS: positiveInt(30_000),
  /** Times a job may be found abandoned by a dead worker and retried before it is failed. */
  JOB_MAX_STALLED: nonNegativeInt(1),
  /** How often workers look for jobs that were lost or outlived JOB_TIMEOUT_MS. */
  JOB_SWEEP_INTERVAL_MS: positiveInt(15_000),
  /** On SIGTERM, how long running jobs may take to finish before they go back to the queue. */
  SHUTDOWN_TIMEOUT_MS: positiveInt(25_000),
  EVENT_HISTORY_TTL_SECONDS: positiveInt(24 * 3600),
  EVENT_HISTORY_MAX_PER_JOB: positiveInt(1000),
  EVENT_HISTORY_MAX_GLOBAL: positiveInt(10_000),

  MARE_API_PORT: port(16000),
  /** Base URL of triton-api, for submissions and cache misses. */
  TRITON_API_URL: z.url().default('http://127.0.0.1:8000'),
  /** Redis that carries triton's events, when not REDIS_URL. */
  TRITON_REDIS_URL: redisUrl.optional(),
  RESULT_CACHE_TTL_SECONDS: positiveInt(3600),
  TRITON_REQUEST_TIMEOUT_MS: positiveInt(5000),
  SSE_HEARTBEAT_MS: positiveInt(15_000),
  /** Reconnection delay that SSE clients are told (`retry:`). */
  SSE_RETRY_MS: positiveInt(2000),
  SSE_MAX_CONNECTIONS: positiveInt(20_000),
  /** Unsent bytes above which an SSE connection is congested (its progress and text merge). */
  SSE_HIGH_WATER_BYTES: positiveInt(64 * 1024),
  /** Events waiting on a congested SSE connection beyond which it is cut (the client resumes). */
  SSE_MAX_PENDING_EVENTS: positiveInt(256),
  /**
   * Signs stream tokens (32 characters or more): every gateway of a deployment needs the same
   * one. Required with AUTH=on; `npm start` makes one up when unset. Never logged.
   */
  STREAM_TOKEN_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** How long a stream token opens streams, in seconds (an open stream outlives it). */
  STREAM_TOKEN_TTL_SECONDS: z.coerce.number().int().positive().max(86_400).default(900),
  /** Job submissions per client address per minute, on each API (0: no limit). */
  SUBMIT_RATE_LIMIT_PER_MINUTE: nonNegativeInt(120),
  /** Other writes (clients, value propositions, cancellations) per client address per minute, on each API (0: no limit). */
  WRITE_RATE_LIMIT_PER_MINUTE: nonNegativeInt(120),
});

/** The environment as the schema parsed it: every variable typed, defaults applied. */
export type Env = z.infer<typeof EnvSchema>;

/**
 * What every part reads: logging, where Redis and the data are, HTTP limits, rate limits and
 * shutdown. Each field is the variable of the same meaning in `.env.example`.
 */
export interface CommonConfig {
  logLevel: Env['LOG_LEVEL'];
  logFormat: Env['LOG_FORMAT'];
  host: string;
  dataDir: string;
  redisUrl: string | undefined;
  /** The variables `redisUrl` comes from (`REDIS_URL`, or the REDIS_HOST… that were set), for logs. */
  redisUrlFrom: string | undefined;
  keyPrefix: string;
  embeddedRedisPort: number;
  bodyLimitBytes: number;
  trustProxy: boolean | string;
  gatewaySecret: string | undefined;
  /** AUTH as set; undefined when unset (then off, see {@link requireAuthDecision}). */
  auth: 'on' | 'off' | undefined;
  /** Origins allowed to call the APIs from a browser: `*` for any. */
  corsOrigins: '*' | readonly string[];
  metricsToken: string | undefined;
  submitRateLimitPerMinute: number;
  writeRateLimitPerMinute: number;
  shutdownTimeoutMs: number;
}

/** What triton-api and its workers read: the generator, the database, the queue and history. */
export interface TritonConfig {
  generator: GeneratorConfig;
  port: number;
  databaseUrl: string | undefined;
  pgliteDataDir: string;
  inProcessWorker: boolean;
  /** Serve the queue UI (bull-board) at /admin/queues. */
  queueUi: boolean;
  workerConcurrency: number;
  workerMetricsPort: number;
  generationStepMs: number;
  deltaIntervalMs: number;
  jobAttempts: number;
  jobTimeoutMs: number;
  jobLockMs: number;
  jobMaxStalled: number;
  jobSweepIntervalMs: number;
  history: { ttlSeconds: number; maxPerJob: number; maxGlobal: number };
}

/** What mare-api reads: its port, triton-api and its Redis, the results cache and SSE limits. */
export interface MareConfig {
  port: number;
  tritonApiUrl: string;
  tritonRedisUrl: string | undefined;
  resultCacheTtlSeconds: number;
  tritonRequestTimeoutMs: number;
  sseHeartbeatMs: number;
  sseRetryMs: number;
  sseMaxConnections: number;
  sseHighWaterBytes: number;
  sseMaxPendingEvents: number;
  streamTokenSecret: string | undefined;
  streamTokenTtlSeconds: number;
}

/** The whole configuration, read once at start by {@link loadConfig} and frozen. */
export interface Config {
  common: CommonConfig;
  triton: TritonConfig;
  mare: MareConfig;
}

/** Variables whose values a message never shows, even a wrong one. */
const SECRET_VARIABLES = new Set([
  'GATEWAY_SECRET',
  'METRICS_TOKEN',
  'OPENAI_API_KEY',
  'REDIS_PASSWORD',
  'STREAM_TOKEN_SECRET',
]);

/** A configuration value that cannot be used; its message is one line naming the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** True for an address only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** True for an http(s) origin written as browsers send it: scheme, host, port, nothing else. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return /^https?:$/.test(url.protocol) && url.origin === value;
  } catch {
    return false;
  }
}

function deepFreeze<T extends object>(value: T): Readonly<T> {
  for (const v of Object.values(value)) if (v && typeof v === 'object') deepFreeze(v as object);
  return Object.freeze(value);
}

/**
 * Reads the configuration from an environment (default: the process's). Empty values count as
 * unset, as in most `.env` files. Throws {@link ConfigError} naming the first bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') raw[key] = value.trim();
  }
  const parsed = EnvSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    const shown = raw[name] !== undefined && !SECRET_VARIABLES.has(name);
    const got = shown ? ` (got ${JSON.stringify(redactCredentials(raw[name] ?? ''))})` : '';
    throw new ConfigError(`Invalid configuration: ${name}: ${issue?.message ?? 'invalid'}${got}`);
  }
  const e = parsed.data;
  if (e.AUTH === 'on' && e.CORS_ORIGINS?.[0] === '*') {
    throw new ConfigError(
      'Invalid configuration: CORS_ORIGINS: * lets any site use a key it got hold of; with AUTH=on, list the origins',
    );
  }
  const embedded = e.DATABASE_URL === undefined;
  const redis = redisOf(e);
  return deepFreeze({
    common: {
      logLevel: e.LOG_LEVEL,
      logFormat: e.LOG_FORMAT,
      host: e.HOST,
      dataDir: path.resolve(e.DATA_DIR),
      redisUrl: redis?.url,
      redisUrlFrom: redis?.from,
      keyPrefix: e.REDIS_KEY_PREFIX,
      embeddedRedisPort: e.EMBEDDED_REDIS_PORT,
      bodyLimitBytes: e.BODY_LIMIT_BYTES,
      trustProxy:
        e.TRUST_PROXY === 'true' ? true : e.TRUST_PROXY === 'false' ? false : e.TRUST_PROXY,
      gatewaySecret: e.GATEWAY_SECRET,
      auth: e.AUTH,
      corsOrigins:
        e.CORS_ORIGINS === undefined
          ? e.AUTH === 'on'
            ? []
            : '*'
          : e.CORS_ORIGINS[0] === '*'
            ? '*'
            : e.CORS_ORIGINS,
      metricsToken: e.METRICS_TOKEN,
      submitRateLimitPerMinute: e.SUBMIT_RATE_LIMIT_PER_MINUTE,
      writeRateLimitPerMinute: e.WRITE_RATE_LIMIT_PER_MINUTE,
      shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    },
    triton: {
      generator: generatorConfig(e),
      port: e.TRITON_API_PORT,
      databaseUrl: e.DATABASE_URL,
      pgliteDataDir:
        e.PGLITE_DATA_DIR === 'memory://'
          ? 'memory://'
          : path.resolve(e.PGLITE_DATA_DIR ?? path.join(e.DATA_DIR, 'pglite')),
      inProcessWorker: e.TRITON_API_WORKER === 'auto' ? embedded : e.TRITON_API_WORKER === 'true',
      // With auth on it asks for an admin key, wherever it is served.
      queueUi:
        e.QUEUE_UI === 'auto' ? isLoopback(e.HOST) || e.AUTH === 'on' : e.QUEUE_UI === 'true',
      workerConcurrency: e.WORKER_CONCURRENCY,
      workerMetricsPort: e.WORKER_METRICS_PORT,
      generationStepMs: e.GENERATION_STEP_MS,
      deltaIntervalMs: e.DELTA_INTERVAL_MS,
      jobAttempts: e.JOB_ATTEMPTS,
      jobTimeoutMs: e.JOB_TIMEOUT_MS,
      jobLockMs: e.JOB_LOCK_MS,
      jobMaxStalled: e.JOB_MAX_STALLED,
      jobSweepIntervalMs: e.JOB_SWEEP_INTERVAL_MS,
      history: {
        ttlSeconds: e.EVENT_HISTORY_TTL_SECONDS,
        maxPerJob: e.EVENT_HISTORY_MAX_PER_JOB,
        maxGlobal: e.EVENT_HISTORY_MAX_GLOBAL,
      },
    },
    mare: {
      port: e.MARE_API_PORT,
      tritonApiUrl: e.TRITON_API_URL.replace(/\/+$/, ''),
      tritonRedisUrl: e.TRITON_REDIS_URL,
      resultCacheTtlSeconds: e.RESULT_CACHE_TTL_SECONDS,
      tritonRequestTimeoutMs: e.TRITON_REQUEST_TIMEOUT_MS,
      sseHeartbeatMs: e.SSE_HEARTBEAT_MS,
      sseRetryMs: e.SSE_RETRY_MS,
      sseMaxConnections: e.SSE_MAX_CONNECTIONS,
      sseHighWaterBytes: e.SSE_HIGH_WATER_BYTES,
      sseMaxPendingEvents: e.SSE_MAX_PENDING_EVENTS,
      streamTokenSecret: e.STREAM_TOKEN_SECRET,
      streamTokenTtlSeconds: e.STREAM_TOKEN_TTL_SECONDS,
    },
  });
}

/** Names of every variable, with its default, for `.env.example` and its test. */
export function configVariables(): string[] {
  return Object.keys(EnvSchema.shape);
}

/** Whether the APIs require API keys. */
export function authEnabled(common: Pick<CommonConfig, 'auth'>): boolean {
  return common.auth === 'on';
}

/**
 * What an API checks before it starts serving: that nobody gets an open API on an address other
 * machines reach by forgetting AUTH, and that with AUTH=on it has the secrets it needs (mare-api
 * names its callers to triton-api with GATEWAY_SECRET and signs stream tokens with
 * STREAM_TOKEN_SECRET). Throws a {@link ConfigError} naming the variable.
 */
export function requireAuthDecision(
  common: Pick<CommonConfig, 'auth' | 'host' | 'gatewaySecret'>,
  mare?: Pick<MareConfig, 'streamTokenSecret'>,
): void {
  if (common.auth === undefined && !isLoopback(common.host)) {
    throw new ConfigError(
      `Invalid configuration: AUTH: must be set when HOST (${common.host}) is reachable from other machines: AUTH=on to require API keys, or AUTH=off to serve anyone`,
    );
  }
  if (common.auth !== 'on' || !mare) return;
  if (!common.gatewaySecret) {
    throw new ConfigError(
      'Invalid configuration: GATEWAY_SECRET: required with AUTH=on (mare-api names its callers to triton-api with it); set the same value on both',
    );
  }
  if (!mare.streamTokenSecret) {
    throw new ConfigError(
      'Invalid configuration: STREAM_TOKEN_SECRET: required with AUTH=on (stream tokens are signed with it); set the same value on every gateway',
    );
  }
}
