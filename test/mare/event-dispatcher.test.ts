import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { createLogger } from '../../src/common/logger.js';
import {
  createKeyspace,
  decodeEvent,
  type JobEvent,
  type JobEventDraft,
  type Keyspace,
} from '../../src/contract/index.js';
import { EventDispatcher } from '../../src/mare/event-dispatcher.js';
import { EventHistory } from '../../src/mare/event-history.js';
import { JobLookup } from '../../src/mare/job-lookup.js';
import { JobSnapshots } from '../../src/mare/job-snapshots.js';
import type { LiveEvent } from '../../src/mare/live-event.js';
import { MareMetrics } from '../../src/mare/mare-metrics.js';
import { ResultsCache } from '../../src/mare/results-cache.js';
import type { SseHub } from '../../src/mare/sse-hub.js';
import { TritonClient } from '../../src/mare/triton-client.js';
import { EventPublisher } from '../../src/triton/events/event-publisher.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

let server: RedisServer;
let redis: Redis;
const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis.disconnect();
  await server.close();
});

/** A hub that records what it is asked to do, standing in for the SSE connections. */
class RecordingHub {
  readonly broadcasts: LiveEvent[] = [];
  readonly resyncs: Array<{ jobId: string; seq: number }> = [];
  watched: string[] = [];
  broadcast(live: LiveEvent) {
    this.broadcasts.push(live);
  }
  resyncJob(jobId: string, _doc: unknown, seq: number) {
    this.resyncs.push({ jobId, seq });
  }
  watchedJobIds() {
    return this.watched;
  }
}

function setup() {
  const keyspace: Keyspace = createKeyspace(`test:${randomBytes(4).toString('hex')}:`);
  const hub = new RecordingHub();
  const cache = new ResultsCache({ redis, keyspace });
  const history = new EventHistory({ redis, keyspace });
  const metrics = new MareMetrics(new Registry());
  // Nothing listens there: a lookup that reached triton-api would fail the test.
  const triton = new TritonClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 200 });
  const lookup = new JobLookup({ cache, triton, logger, metrics });
  const snapshots = new JobSnapshots({ lookup, triton, logger });
  const dispatcher = new EventDispatcher({
    hub: hub as unknown as SseHub,
    cache,
    history,
    snapshots,
    metrics,
    logger,
  });
  const publisher = new EventPublisher({ redis, keyspace, logger });
  return { keyspace, hub, cache, dispatcher, publisher };
}

const CLIENT = randomUUID();
const draft = {
  started: (jobId: string): JobEventDraft => ({
    event_type: 'job:started',
    timestamp: new Date().toISOString(),
    job_id: jobId,
    client_id: CLIENT,
    status: 'running',
    started_at: new Date().toISOString(),
  }),
  completed: (jobId: string): JobEventDraft => ({
    event_type: 'job:completed',
    timestamp: new Date().toISOString(),
    job_id: jobId,
    client_id: CLIENT,
    status: 'completed',
    template_ids: ['a'],
    template_count: 1,
    generation_duration_ms: 7,
    completed_at: new Date().toISOString(),
  }),
};

/** Subscribes to the all-jobs channel: what the gateway's subscriber would hand the dispatcher. */
async function allJobsMessages(keyspace: Keyspace) {
  const sub = new Redis(server.url);
  const messages: Array<{ event: JobEvent; json: string }> = [];
  sub.on('message', (_c: string, json: string) =>
    messages.push({ event: decodeEvent(json), json }),
  );
  await sub.subscribe(keyspace.allJobsChannel);
  return { messages, close: () => sub.disconnect() };
}

describe('EventDispatcher', () => {
  it('broadcasts each event once, dropping any whose seq is not above the last for its job', async () => {
    const { hub, dispatcher, publisher, keyspace } = setup();
    const sub = await allJobsMessages(keyspace);
    const job = randomUUID();
    await publisher.publish(draft.started(job));
    await publisher.publish(draft.started(job));
    await waitFor('2 messages', () => sub.messages.length >= 2);
    const [first, second] = sub.messages;
    for (const m of [first, second, first, second]) if (m) dispatcher.handle(m.event, m.json);
    expect(hub.broadcasts.map((l) => l.seq)).toEqual([1, 2]);
    sub.close();
  });

  it('caches a terminal event’s status document', async () => {
    const { dispatcher, publisher, keyspace, cache } = setup();
    const sub = await allJobsMessages(keyspace);
    const job = randomUUID();
    await publisher.publish(draft.completed(job));
    await waitFor('the message', () => sub.messages.length >= 1);
    const m = sub.messages[0]!;
    dispatcher.handle(m.event, m.json);
    const cached = await waitFor('the cached result', () =>
      cache.getJson(job).then((j) => j ?? undefined),
    );
    expect(JSON.parse(cached)).toMatchObject({
      job_id: job,
      status: 'completed',
      template_count: 1,
    });
    sub.close();
  });

  it('reconciles from the global position of the last event it received, not before it, each event once', async () => {
    const { hub, dispatcher, publisher, keyspace } = setup();
    const before = randomUUID();
    await publisher.publish(draft.started(before)); // already in history when the gateway starts
    await dispatcher.start();
    const sub = await allJobsMessages(keyspace);
    const seen = randomUUID();
    await publisher.publish(draft.started(seen));
    await waitFor('the live message', () => sub.messages.length >= 1);
    const m = sub.messages[0]!;
    expect(m.event.stream_id).toMatch(/^\d+-\d+$/);
    dispatcher.handle(m.event, m.json);
    sub.close();
    // The subscription is lost: these are never received live.
    const missed = randomUUID();
    await publisher.publish(draft.started(missed));
    await publisher.publish(draft.completed(missed));
    await dispatcher.reconcile();
    await dispatcher.reconcile();
    expect(
      hub.broadcasts.map(
        (l) => `${l.jobId === seen ? 'seen' : l.jobId === missed ? 'missed' : 'before'}:${l.seq}`,
      ),
    ).toEqual(['seen:1', 'missed:1', 'missed:2']);
    // Replayed all-jobs events carry their position, as live ones do.
    expect(hub.broadcasts[1]?.event.stream_id).toMatch(/^\d+-\d+$/);
  });

  it('resyncs a watched job whose history is gone from its status document, without triton-api when it is cached', async () => {
    const { hub, dispatcher, cache } = setup();
    const job = randomUUID();
    await cache.set({
      job_id: job,
      client_id: CLIENT,
      status: 'completed',
      progress: 100,
      template_ids: [],
      template_count: 0,
      generation_duration_ms: 1,
      error_message: null,
      completed_at: new Date().toISOString(),
    });
    hub.watched = [job];
    await dispatcher.start();
    await dispatcher.reconcile();
    expect(hub.resyncs).toEqual([{ jobId: job, seq: 0 }]);
  });
});
