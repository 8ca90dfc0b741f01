import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redactCredentials } from './error-serializer.js';
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
  const sentinel = sentinelOptionsOf(url);
  const settings: RedisOptions = {
    connectionName: name,
    maxRetriesPerRequest,
    enableReadyCheck: true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), 2000),
    ...options,
  };
  const redis = sentinel ? new Redis({ ...sentinel, ...settings }) : new Redis(url, settings);
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
  if (url.startsWith(SENTINEL_SCHEME)) return redactCredentials(url);
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

const SENTINEL_SCHEME = 'redis+sentinel://';

/** What a Sentinel URL names (see {@link sentinelOptionsOf}). */
export interface SentinelUrl {
  /** The sentinels to ask, in the order given. */
  sentinels: { host: string; port: number }[];
  /** The name the sentinels monitor the master under. */
  name: string;
  db: number;
  username?: string;
  password?: string;
}

/**
 * Reads `redis+sentinel://[user:password@]host[:port][,host[:port]…]/<master name>[/<db>]`
 * (port 26379 unless given; an IPv6 host in brackets). The user and password are the data
 * nodes'; the sentinels are asked without one. Returns undefined for any other scheme; throws,
 * saying what is wrong (never quoting the URL), for a Sentinel URL it cannot read.
 */
export function parseSentinelUrl(url: string): SentinelUrl | undefined {
  if (!url.startsWith(SENTINEL_SCHEME)) return undefined;
  const rest = url.slice(SENTINEL_SCHEME.length);
  const at = rest.lastIndexOf('@', rest.indexOf('/') === -1 ? undefined : rest.indexOf('/'));
  const userinfo = at === -1 ? '' : rest.slice(0, at);
  const [hostList = '', name = '', db = '0', ...extra] = rest.slice(at + 1).split('/');
  const fail = (why: string): never => {
    throw new Error(why);
  };
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      return fail('has a bad %-escape in its user, password or master name');
    }
  };
  if (!name)
    fail('names no master (redis+sentinel://host:26379[,host:port…]/<master name>[/<db>])');
  if (extra.length > 0 || !/^\d{1,2}$/.test(db))
    fail('has a path other than /<master name>[/<db>]');
  const sentinels = hostList.split(',').map((entry) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(entry);
    const port = Number(match?.[2] ?? 26379);
    if (!match?.[1] || port < 1 || port > 65_535)
      return fail(`has a bad sentinel address "${entry}"`);
    return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
  });
  const colon = userinfo.indexOf(':');
  const username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon));
  const password = colon === -1 ? '' : decode(userinfo.slice(colon + 1));
  return {
    sentinels,
    name: decode(name),
    db: Number(db),
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  };
}

/**
 * ioredis options that reach the master a Sentinel URL names, whichever server that is now:
 * the client asks the sentinels for it, checks that it is a master, and asks again after a
 * failover (which it also hears of at once from the sentinels). Undefined for another scheme.
 */
export function sentinelOptionsOf(url: string): RedisOptions | undefined {
  const parsed = parseSentinelUrl(url);
  if (!parsed) return undefined;
  const { sentinels, name, db, username, password } = parsed;
  return {
    sentinels,
    name,
    db,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    failoverDetector: true,
    sentinelRetryStrategy: (attempt) => Math.min(100 * attempt, 1000),
  };
}

/**
 * Asks the server at `url` once whether it is a node of a Redis Cluster (`INFO cluster`), so
 * that the same `REDIS_URL` runs the system on a single server or on a cluster. Waits for the
 * server up to `timeoutMs`. A cluster has only database 0: a URL selecting another is refused.
 */
export async function detectRedis(url: string, timeoutMs = 10_000): Promise<RedisTarget> {
  const sentinel = sentinelOptionsOf(url);
  const { db = 0, ...node } = sentinel ?? nodeOptionsOf(url);
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
