import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.js';

export type { Cluster, Redis };

/** A connection to a single server, or to every node of a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** What a Redis URL names, found once at start by {@link detectRedis}. */
export interface RedisTarget {
  readonly url: string;
  /** True when the server is a node of a Redis Cluster: the client then talks to every node. */
  readonly cluster: boolean;
}

/** How a connection made by {@link createRedis} (or a cluster's) names itself and logs. */
export interface RedisConnectionOptions {
  /** Shown in logs and as the connection's `CLIENT SETNAME`. */
  name: string;
  logger: Logger;
  /**
   * BullMQ's blocking connections need this null; others fail fast while disconnected.
   * @defaultValue 3
   */
  maxRetriesPerRequest?: number | null;
  /** Extra ioredis options. */
  options?: RedisOptions;
}

/**
 * A Redis connection that reconnects by itself (capped exponential backoff) and logs its
 * state changes once each, not once per retry.
 */
export function createRedis(
  url: string,
  { name, logger, maxRetriesPerRequest = 3, options = {} }: RedisConnectionOptions,
): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest,
    enableReadyCheck: true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), 2000),
    ...options,
  });
  let down = false;
  redis.on('ready', () => {
    if (down) logger.info({ redis: name }, `Redis connection "${name}" restored`);
    down = false;
  });
  redis.on('error', (err: Error) => {
    if (!down) logger.warn({ redis: name, err }, `Redis connection "${name}" failed`);
    down = true;
  });
  redis.on('end', () => {
    down = true;
  });
  return redis;
}

/** Resolves once the connection is ready, or rejects with a clear message after `timeoutMs`. */
export async function waitForRedis(
  redis: RedisClient,
  url: string,
  timeoutMs = 10_000,
): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis at ${redactUrl(url)} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** A URL with its password hidden, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** Quits gracefully, or disconnects when the server is unreachable. Safe to call twice. */
export async function closeRedis(redis: RedisClient): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}

/** Where a URL points, as ioredis options for one node, and the database it selects. */
export function nodeOptionsOf(
  url: string,
): { host: string; port: number; db: number } & RedisOptions {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(u.port || 6379),
    db: Number(u.pathname.slice(1) || 0),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * Asks the server at `url` once whether it is a node of a Redis Cluster (`INFO cluster`), so
 * that the same `REDIS_URL` runs the system on a single server or on a cluster. Waits for the
 * server up to `timeoutMs`. A cluster has only database 0: a URL selecting another is refused.
 */
export async function detectRedis(url: string, timeoutMs = 10_000): Promise<RedisTarget> {
  const { db, ...node } = nodeOptionsOf(url);
  let lastError: Error | undefined;
  const probe = new Redis({
    ...node,
    connectionName: 'probe',
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), 500),
  });
  probe.on('error', (err: Error) => (lastError = err));
  let timer: NodeJS.Timeout | undefined;
  try {
    const info = await Promise.race([
      probe.info('cluster'),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const cause = lastError ? ` (${lastError.message})` : '';
          reject(
            new Error(`Redis at ${redactUrl(url)} did not answer within ${timeoutMs} ms${cause}`),
          );
        }, timeoutMs);
      }),
    ]);
    const cluster = /^cluster_enabled:1\s*$/m.test(info);
    if (cluster && db !== 0) {
      throw new Error(
        `Redis at ${redactUrl(url)} is a cluster node: a cluster has only database 0, but the URL selects database ${db}`,
      );
    }
    return { url, cluster };
  } finally {
    clearTimeout(timer);
    probe.disconnect();
  }
}

/** Options of {@link createRedisClient}. */
export interface RedisClientOptions extends RedisConnectionOptions {
  /**
   * On a cluster, subscribe to sharded channels (SSUBSCRIBE) through one connection per node
   * that owns them. @defaultValue false
   */
  sharded?: boolean;
}

/** A connection to `target`: {@link createRedis} for a single server, a cluster client for a cluster. */
export function createRedisClient(
  target: RedisTarget,
  { sharded = false, ...options }: RedisClientOptions,
): RedisClient {
  return target.cluster
    ? createRedisCluster(target.url, { ...options, sharded })
    : createRedis(target.url, options);
}

/**
 * A client of a whole Redis Cluster, found from the one node `url` names. It reconnects by
 * itself and logs its state changes once each, as {@link createRedis} does.
 */
export function createRedisCluster(
  url: string,
  { name, logger, maxRetriesPerRequest = 3, options = {}, sharded = false }: RedisClientOptions,
): Cluster {
  const { host, port, db: _db, ...node } = nodeOptionsOf(url);
  const cluster = new Cluster([{ host, port }], {
    shardedSubscribers: sharded,
    clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), 2000),
    // A failover takes the cluster's node timeout and an election; a command sent meanwhile
    // waits and is sent again to the new owner of its slot, rather than failing at once.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    maxRedirections: 32,
    // Notices a promoted replica even while no command has failed yet.
    slotsRefreshInterval: 5000,
    enableReadyCheck: true,
    redisOptions: { ...node, connectionName: name, maxRetriesPerRequest, ...options },
  });
  let down = false;
  cluster.on('ready', () => {
    if (down) logger.info({ redis: name }, `Redis connection "${name}" restored`);
    down = false;
  });
  cluster.on('error', (err: Error) => {
    if (!down) logger.warn({ redis: name, err }, `Redis connection "${name}" failed`);
    down = true;
  });
  // While a failed master is being replaced every retry fails again: one line a minute per node.
  const nodeFailureLogged = new Map<string, number>();
  cluster.on('node error', (err: Error, node: string) => {
    const now = Date.now();
    if (now - (nodeFailureLogged.get(node) ?? -Infinity) < 60_000) return;
    nodeFailureLogged.set(node, now);
    logger.warn({ redis: name, node, err }, `Redis node ${node} of "${name}" failed`);
  });
  cluster.on('end', () => {
    down = true;
  });
  return cluster;
}

/** Whether a connection talks to a Redis Cluster. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster;
}
