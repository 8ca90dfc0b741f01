import { createKeyspace, retryFrame } from '../contract/index.js';
import { ApiKeys } from '../common/api-keys.js';
import {
  authEnabled,
  requireAuthDecision,
  type CommonConfig,
  type MareConfig,
} from '../common/config.js';
import { boundPort, localUrl, type HttpApp } from '../common/http.js';
import type { Logger } from '../common/logger.js';
import { createHttpDurationHistogram, createRegistry } from '../common/metrics.js';
import { createCachedLookupFastPath } from './cached-lookup-fast-path.js';
import {
  closeRedis,
  createRedisClient,
  detectRedis,
  redactUrl,
  waitForRedis,
} from '../common/redis.js';
import { EventHistory } from './event-history.js';
import { JobLookup } from './job-lookup.js';
import { JobSnapshots } from './job-snapshots.js';
import { buildMareApi } from './mare-api.js';
import { MareMetrics } from './mare-metrics.js';
import { ResultsCache } from './results-cache.js';
import { SseHub, type EventSubscriptions } from './sse-hub.js';
import { CacherLease } from './cacher-lease.js';
import { CorsPolicy } from './cors-policy.js';
import { StreamTokens } from './stream-tokens.js';
import { EventDispatcher } from './event-dispatcher.js';
import { TritonClient } from './triton-client.js';
import { TritonEventSubscriber } from './triton-event-subscriber.js';

/** How long the cacher's lease lasts unrenewed: the longest a crashed cacher's jobs go uncached. */
const CACHER_LEASE_MS = 15_000;

/** What {@link startMare} runs from: the configuration and the process's logger. */
export interface StartMareOptions {
  common: CommonConfig;
  mare: MareConfig;
  /** The root logger; mare-api logs through a child with `service: mare-api`. */
  logger: Logger;
  /** Port to listen on instead of the configured one (0: any free port). */
  port?: number;
}

/** A running mare-api, for its launcher and for tests. */
export interface MareService {
  /** Where this machine reaches it. */
  readonly url: string;
  readonly app: HttpApp;
  /** Its open SSE connections. */
  readonly hub: SseHub;
  /** Ends SSE streams (telling clients when to come back), then closes everything. Safe to call twice. */
  close(): Promise<void>;
}

/** Starts mare-api: one subscriber, the results cache, the SSE hub and the HTTP API. */
export async function startMare({
  common,
  mare,
  logger,
  port,
}: StartMareOptions): Promise<MareService> {
  const cacheUrl = common.redisUrl;
  if (!cacheUrl) throw new Error('REDIS_URL is not set');
  requireAuthDecision(common, mare);
  const auth = authEnabled(common);
  const eventsUrl = mare.tritonRedisUrl ?? cacheUrl;
  const log = logger.child({ service: 'mare-api' });
  const keyspace = createKeyspace(common.keyPrefix);

  const cacheTarget = await detectRedis(cacheUrl);
  const eventsTarget = eventsUrl === cacheUrl ? cacheTarget : await detectRedis(eventsUrl);
  // Lookups fail fast while the cache is down and fall back to triton-api.
  const cacheRedis = createRedisClient(cacheTarget, {
    name: 'mare-cache',
    logger: log,
    maxRetriesPerRequest: 1,
  });
  const eventsRedis = createRedisClient(eventsTarget, {
    name: 'mare-history',
    logger: log,
    maxRetriesPerRequest: 1,
  });
  await Promise.all([waitForRedis(cacheRedis, cacheUrl), waitForRedis(eventsRedis, eventsUrl)]);
  const kind = (cluster: boolean) => (cluster ? ' (cluster)' : '');
  log.info(
    `Redis: cache ${redactUrl(cacheUrl)}${kind(cacheTarget.cluster)}, events ${redactUrl(eventsUrl)}${kind(eventsTarget.cluster)}`,
  );

  const registry = createRegistry('mare-api');
  const metrics = new MareMetrics(registry);
  const httpDuration = createHttpDurationHistogram(registry, 'mare');
  // The hub subscribes through the dispatcher, which keeps each route's seq memory (both exist
  // before the first stream opens).
  const subscriptions: EventSubscriptions = {
    watchJob: (jobId) => dispatcher.watchJob(jobId),
    unwatchJob: (jobId) => dispatcher.unwatchJob(jobId),
    watchAll: () => dispatcher.watchAll(),
    unwatchAll: () => dispatcher.unwatchAll(),
  };
  const hub: SseHub = new SseHub({
    subscriptions,
    heartbeatMs: mare.sseHeartbeatMs,
    onCountChange: (kind, count) => metrics.sseConnections.set({ stream: kind }, count),
    onFlushed: (events) => {
      const now = Date.now();
      for (const { event } of events) {
        metrics.sseDelivery.observe(Math.max(0, (now - Date.parse(event.timestamp)) / 1000));
      }
    },
  });
  const cache = new ResultsCache({
    redis: cacheRedis,
    keyspace,
    ttlSeconds: mare.resultCacheTtlSeconds,
  });
  const triton = new TritonClient({
    baseUrl: mare.tritonApiUrl,
    timeoutMs: mare.tritonRequestTimeoutMs,
    gatewaySecret: common.gatewaySecret,
    identity: auth,
  });
  // Keys live in the Redis both APIs use (REDIS_URL), not in TRITON_REDIS_URL's.
  const keys = auth ? new ApiKeys({ redis: cacheRedis, keyspace }) : undefined;
  const streamTokens =
    keys && mare.streamTokenSecret
      ? new StreamTokens({
          secret: mare.streamTokenSecret,
          ttlSeconds: mare.streamTokenTtlSeconds,
          keys,
        })
      : undefined;
  const cors = new CorsPolicy(common.corsOrigins);
  log.info(
    auth
      ? `Auth: on (every request needs an API key or, on streams, a stream token valid ${mare.streamTokenTtlSeconds} s; each tenant sees its own jobs)`
      : 'Auth: off (anyone who reaches this gateway may use it; set AUTH=on to require API keys)',
  );
  const lookup = new JobLookup({ cache, triton, logger: log, metrics });
  const history = new EventHistory({ redis: eventsRedis, keyspace });
  const snapshots = new JobSnapshots({ lookup, triton, logger: log });

  const subscriber = new TritonEventSubscriber({
    target: eventsTarget,
    keyspace,
    logger: log,
    onEvent: (event, json, route) => dispatcher.handle(event, json, route),
    onInvalid: () => metrics.eventsInvalid.inc(),
    onResubscribed: (route) => void dispatcher.reconcile(route),
    onJobChannels: (count) => metrics.subscribedJobChannels.set(count),
  });
  const dispatcher: EventDispatcher = new EventDispatcher({
    hub,
    subscriber,
    cache,
    history,
    snapshots,
    metrics,
    logger: log,
  });
  await subscriber.start();

  // One gateway caches every result as its job ends; the others receive only what they serve.
  const lease = new CacherLease({
    redis: cacheRedis,
    key: keyspace.cacherLeaseKey,
    logger: log,
    onAcquired: () => {
      metrics.resultsCacher.set(1);
      dispatcher.setCaching(true);
      dispatcher
        .watchAll()
        .then(() => dispatcher.cacheRecentResults(CACHER_LEASE_MS))
        .catch((err: unknown) =>
          log.warn({ err }, 'Could not cache the results of recently finished jobs'),
        );
    },
    onLost: () => {
      metrics.resultsCacher.set(0);
      dispatcher.setCaching(false);
      dispatcher.unwatchAll();
    },
    leaseMs: CACHER_LEASE_MS,
  });
  await lease.start();

  const app = await buildMareApi(
    {
      hub,
      history,
      lookup,
      snapshots,
      triton,
      metrics,
      logger: log,
      streamTokens,
      cors,
      config: {
        sseMaxConnections: mare.sseMaxConnections,
        sseRetryMs: mare.sseRetryMs,
        sseStream: {
          highWaterBytes: mare.sseHighWaterBytes,
          maxPendingEvents: mare.sseMaxPendingEvents,
          onSlowConsumer: () => metrics.sseRejected.inc({ reason: 'slow_consumer' }),
        },
      },
    },
    {
      registry,
      bodyLimit: common.bodyLimitBytes,
      trustProxy: common.trustProxy,
      httpDuration,
      fastPath: createCachedLookupFastPath({
        cache,
        metrics,
        httpDuration,
        logger: log,
        cors,
        ...(keys ? { keys } : {}),
      }),
      cors,
      ...(keys ? { keys } : {}),
      metricsToken: common.metricsToken,
      rateLimit: {
        submitPerMinute: common.submitRateLimitPerMinute,
        writePerMinute: common.writeRateLimitPerMinute,
        redis: cacheRedis,
        keyspace,
      },
      readiness: {
        redis: () => cacheRedis.ping(),
        events_redis: () => eventsRedis.ping(),
      },
    },
  );
  // Open streams are hijacked from Fastify: end them first, telling clients when to reconnect.
  app.addHook('preClose', (done) => {
    hub.closeAll(retryFrame(mare.sseRetryMs));
    done();
  });
  await app.listen({ host: common.host, port: port ?? mare.port });
  const url = localUrl(common.host, boundPort(app, mare.port));

  let closing: Promise<void> | undefined;
  return {
    url,
    app,
    hub,
    close() {
      closing ??= (async () => {
        await app.close();
        hub.close();
        await lease.close();
        await subscriber.close();
        await Promise.all([closeRedis(cacheRedis), closeRedis(eventsRedis)]);
      })();
      return closing;
    },
  };
}
