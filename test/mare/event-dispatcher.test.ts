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
  readonly broadcasts: Array<{ route: 'job' | 'all'; live: LiveEvent }> = [];
  readonly resyncs: Array<{ jobId: string; seq: number }> = [];
  watched: string[] = [];
  broadcastJob(live: LiveEvent) {
    this.broadcasts.push({ route: 'job', live });
  }
  broadcastAll(live: LiveEvent) {
    this.broadcasts.push({ route: 'all', live });
  }
  resyncJob(jobId: string, _doc: unknown, seq: number) {
    this.resyncs.push({ jobId, seq });
  }
  watchedJobIds() {
    return this.watched;
  }
  watches(jobId: string) {
    return this.watched.includes(jobId);
  }
  seqs(route: 'job' | 'all') {
    return this.broadcasts.filter((b) => b.route === route).map((b) => b.live.seq);
  }
}

/** Records subscriptions, standing in for the gateway's Redis subscriber. */
class RecordingSubscriber {
  readonly calls: string[] = [];
  watchJob(jobId: string) {
    this.calls.push(`watch ${jobId}`);
    return Promise.resolve();
  }
  unwatchJob(jobId: string) {
    this.calls.push(`unwatch ${jobId}`);
  }
  watchAll() {
    this.calls.push('watch all');
    return Promise.resolve();
  }
  unwatchAll() {
    this.calls.push('unwatch all');
  }
}

function setup() {
  const keyspace: Keyspace = createKeyspace(`test:${randomBytes(4).toString('hex')}:`);
  const hub = new RecordingHub();
  const subscriber = new RecordingSubscriber();
  const cache = new ResultsCache({ redis, keyspace });
  const history = new EventHistory({ redis, keyspace });
  const metrics = new MareMetrics(new Registry());
  // Nothing listens there: a lookup that reached triton-api would fail the test.
  const triton = new TritonClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 200 });
  const lookup = new JobLookup({ cache, triton, logger, metrics });
  const snapshots = new JobSnapshots({ lookup, triton, logger });
  const dispatcher = new EventDispatcher({
    hub: hub as unknown as SseHub,
    subscriber,
    cache,
    history,
    snapshots,
    metrics,
    logger,
  });
  const publisher = new EventPublisher({ redis, keyspace, logger });
  return { keyspace, hub, subscriber, cache, dispatcher, publisher, metrics };
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

/** Subscribes to a channel: what the gateway's subscriber would hand the dispatcher. */
async function messagesOn(channel: string) {
  const sub = new Redis(server.url);
  const messages: Array<{ event: JobEvent; json: string }> = [];
  sub.on('message', (_c: string, json: string) =>
    messages.push({ event: decodeEvent(json), json }),
  );
  await sub.subscribe(channel);
  return { messages, close: () => sub.disconnect() };
}

describe('EventDispatcher', () => {
  it('broadcasts each event once per route, dropping any whose seq is not above the last for its job on that route', async () => {
    const { hub, dispatcher, publisher, keyspace } = setup();
    const job = randomUUID();
    const onJob = await messagesOn(keyspace.jobChannel(job));
    const onAll = await messagesOn(keyspace.allJobsChannel);
    await publisher.publish(draft.started(job));
    await publisher.publish(draft.started(job));
    await waitFor(
      '2 messages on each channel',
      () => onJob.messages.length >= 2 && onAll.messages.length >= 2,
    );
    for (const route of ['job', 'all'] as const) {
      const [first, second] = (route === 'job' ? onJob : onAll).messages;
      for (const m of [first, second, first, second])
        if (m) dispatcher.handle(m.event, m.json, route);
    }
    expect(hub.seqs('job')).toEqual([1, 2]);
    expect(hub.seqs('all')).toEqual([1, 2]);
    onJob.close();
    onAll.close();
  });

  it("caches a terminal event's status document from the all-jobs route, only while it is the cacher", async () => {
    const { dispatcher, publisher, keyspace, cache } = setup();
    const sub = await messagesOn(keyspace.allJobsChannel);
    const [first, second] = [randomUUID(), randomUUID()];
    await publisher.publish(draft.completed(first));
    await publisher.publish(draft.completed(second));
    await waitFor('the messages', () => sub.messages.length >= 2);
    dispatcher.handle(sub.messages[0]!.event, sub.messages[0]!.json, 'all');
    dispatcher.setCaching(true);
    dispatcher.handle(sub.messages[1]!.event, sub.messages[1]!.json, 'all');
    const cached = await waitFor('the cached result', () =>
      cache.getJson(second).then((j) => j ?? undefined),
    );
    expect(JSON.parse(cached)).toMatchObject({
      job_id: second,
      status: 'completed',
      template_count: 1,
    });
    expect(await cache.getJson(first)).toBeNull();
    sub.close();
  });

  it('caches the results of the jobs that ended within a window, as a cacher that just took over does', async () => {
    const { dispatcher, publisher, cache } = setup();
    const [ended, running] = [randomUUID(), randomUUID()];
    await publisher.publish(draft.completed(ended));
    await publisher.publish(draft.started(running));
    expect(await dispatcher.cacheRecentResults(60_000)).toBe(1);
    expect(JSON.parse((await cache.getJson(ended)) ?? '{}')).toMatchObject({ status: 'completed' });
    expect(await cache.getJson(running)).toBeNull();
  });

  it('counts what it receives by event type and channel', async () => {
    const { dispatcher, metrics, publisher, keyspace } = setup();
    const job = randomUUID();
    const onJob = await messagesOn(keyspace.jobChannel(job));
    await publisher.publish(draft.started(job));
    await waitFor('the message', () => onJob.messages.length >= 1);
    dispatcher.handle(onJob.messages[0]!.event, onJob.messages[0]!.json, 'job');
    const counted = await metrics.eventsReceived.get();
    expect(counted.values).toEqual([
      { labels: { event_type: 'job:started', channel: 'job' }, value: 1 },
    ]);
    onJob.close();
  });

  it('marks the end of the global history when the all-jobs route is first watched, and reconciles from the position of the last event received, each event once', async () => {
    const { hub, dispatcher, publisher, keyspace, subscriber } = setup();
    const before = randomUUID();
    await publisher.publish(draft.started(before)); // published while nobody here watched
    await dispatcher.watchAll();
    expect(subscriber.calls).toEqual(['watch all']);
    const sub = await messagesOn(keyspace.allJobsChannel);
    const seen = randomUUID();
    await publisher.publish(draft.started(seen));
    await waitFor('the live message', () => sub.messages.length >= 1);
    const m = sub.messages[0]!;
    expect(m.event.stream_id).toMatch(/^\d+-\d+$/);
    dispatcher.handle(m.event, m.json, 'all');
    sub.close();
    // The subscription is lost: these are never received live.
    const missed = randomUUID();
    await publisher.publish(draft.started(missed));
    await publisher.publish(draft.completed(missed));
    await dispatcher.reconcile('all');
    await dispatcher.reconcile('all');
    expect(
      hub.broadcasts.map(
        ({ live: l }) =>
          `${l.jobId === seen ? 'seen' : l.jobId === missed ? 'missed' : 'before'}:${l.seq}`,
      ),
    ).toEqual(['seen:1', 'missed:1', 'missed:2']);
    // Replayed all-jobs events carry their position, as live ones do.
    expect(hub.broadcasts[1]?.live.event.stream_id).toMatch(/^\d+-\d+$/);
    dispatcher.unwatchAll();
    expect(subscriber.calls).toEqual(['watch all', 'unwatch all']);
  });

  it('reconciles each watched job from its own history after its last event received', async () => {
    const { hub, dispatcher, publisher, keyspace } = setup();
    const job = randomUUID();
    hub.watched = [job];
    const onJob = await messagesOn(keyspace.jobChannel(job));
    await publisher.publish(draft.started(job));
    await waitFor('the live message', () => onJob.messages.length >= 1);
    dispatcher.handle(onJob.messages[0]!.event, onJob.messages[0]!.json, 'job');
    onJob.close();
    await publisher.publish(draft.started(job));
    await publisher.publish(draft.completed(job));
    await dispatcher.reconcile('job');
    expect(hub.seqs('job')).toEqual([1, 2, 3]);
    expect(hub.resyncs).toEqual([]);
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
    await dispatcher.reconcile('job');
    expect(hub.resyncs).toEqual([{ jobId: job, seq: 0 }]);
  });
});
