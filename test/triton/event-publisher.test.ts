import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import type { RedisServer } from '../../src/cli/redis-server.js';
import {
  createKeyspace,
  decodeEvent,
  encodeEventDraft,
  historyEntryField,
  jobHistoryEntryId,
  type JobEventDraft,
  type Keyspace,
  withStreamId,
} from '../../src/contract/index.js';
import {
  EventPublisher,
  type EventPublisherOptions,
} from '../../src/triton/events/event-publisher.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/** The atomic publish (Lua) against a real redis-server; each test has its own key prefix. */

const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
let server: RedisServer;
let redis: Redis;
const subscribers: Redis[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterEach(() => {
  for (const s of subscribers.splice(0)) s.disconnect();
});

afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

function namespace(): Keyspace {
  return createKeyspace(`test-${randomBytes(4).toString('hex')}:`);
}

function publisher(
  keyspace: Keyspace,
  options: Partial<EventPublisherOptions> = {},
): EventPublisher {
  return new EventPublisher({ redis, keyspace, logger, ...options });
}

const CLIENT_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const T0 = '2024-12-01T10:00:00.000Z';

function queued(jobId: string): JobEventDraft {
  return {
    event_type: 'job:queued',
    timestamp: T0,
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'queued',
  };
}

function started(jobId: string): JobEventDraft {
  return {
    event_type: 'job:started',
    timestamp: T0,
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'running',
    started_at: T0,
  };
}

function completed(jobId: string, templateIds: string[] = []): JobEventDraft {
  return {
    event_type: 'job:completed',
    timestamp: '2024-12-01T10:03:30.000Z',
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'completed',
    template_ids: templateIds,
    template_count: templateIds.length,
    generation_duration_ms: 210000,
    completed_at: '2024-12-01T10:03:30.000Z',
  };
}

function failed(jobId: string, message: string): JobEventDraft {
  return {
    event_type: 'job:failed',
    timestamp: T0,
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'failed',
    error_message: message,
    generation_duration_ms: 5,
    completed_at: T0,
  };
}

/** The draft's JSON with `,"seq":N` appended inside the object, as the contract promises. */
function expectedJson(draft: JobEventDraft, seq: number): string {
  return `${encodeEventDraft(draft).slice(0, -1)},"seq":${seq}}`;
}

/** Subscribes to channels on a connection of its own; collects `[channel, message]` pairs. */
async function subscribe(...channels: string[]): Promise<[string, string][]> {
  const sub = new Redis(server.url);
  subscribers.push(sub);
  const received: [string, string][] = [];
  sub.on('message', (channel: string, message: string) => received.push([channel, message]));
  await sub.subscribe(...channels);
  return received;
}

describe('EventPublisher', () => {
  it('assigns seq 1, 2, 3… per job, independently for each job', async () => {
    const keys = namespace();
    const p = publisher(keys);
    const a = randomUUID();
    const b = randomUUID();
    const seqs: [string, number][] = [];
    for (const [job, draft] of [
      [a, queued(a)],
      [b, queued(b)],
      [a, started(a)],
      [a, completed(a)],
      [b, started(b)],
    ] as const) {
      seqs.push([job === a ? 'a' : 'b', (await p.publish(draft)).seq]);
    }
    expect(seqs).toEqual([
      ['a', 1],
      ['b', 1],
      ['a', 2],
      ['a', 3],
      ['b', 2],
    ]);
  });

  it('returns the draft with its seq', async () => {
    const p = publisher(namespace());
    const draft = started(randomUUID());
    expect(await p.publish(draft)).toEqual({ ...draft, seq: 1 });
  });

  it('hands out distinct, gap-free seqs to concurrent publishers on separate connections', async () => {
    const keys = namespace();
    const other = new Redis(server.url);
    try {
      const p1 = publisher(keys);
      const p2 = new EventPublisher({ redis: other, keyspace: keys, logger });
      const job = randomUUID();
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? p1 : p2).publish(started(job))),
      );
      const seqs = results.map((r) => r.seq).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));

      // The job's stream is in seq order, and the global stream holds them in that same order.
      const jobEntries = await redis.xrange(keys.jobHistoryKey(job), '-', '+');
      expect(jobEntries.map(([id]) => id)).toEqual(seqs.map(jobHistoryEntryId));
      const globalEntries = await redis.xrange(keys.globalHistoryKey, '-', '+');
      expect(
        globalEntries.map(([, f]) => decodeEvent(historyEntryField(f, 'e') ?? '').seq),
      ).toEqual(seqs);
    } finally {
      other.disconnect();
    }
  });

  it('publishes on both channels what it stores in both history streams, with its global position on the all-jobs channel', async () => {
    const keys = namespace();
    const job = randomUUID();
    const received = await subscribe(keys.allJobsChannel, keys.jobChannel(job));
    const p = publisher(keys);
    const drafts = [queued(job), started(job), completed(job, ['t1', 't2'])];
    for (const d of drafts) await p.publish(d);
    await waitFor('6 messages', () => received.length >= 6);

    const onAll = received.filter(([c]) => c === keys.allJobsChannel).map(([, m]) => m);
    const onJob = received.filter(([c]) => c === keys.jobChannel(job)).map(([, m]) => m);
    const jobStream = await redis.xrange(keys.jobHistoryKey(job), '-', '+');
    const globalStream = await redis.xrange(keys.globalHistoryKey, '-', '+');
    const expected = drafts.map((d, i) => expectedJson(d, i + 1));

    // The all-jobs channel also says where each event is in the global stream.
    expect(onAll).toEqual(
      expected.map((json, i) => withStreamId(json, globalStream[i]?.[0] ?? '')),
    );
    expect(onAll.map((m) => decodeEvent(m).stream_id)).toEqual(globalStream.map(([id]) => id));
    expect(onJob).toEqual(expected);
    expect(jobStream.map(([, f]) => historyEntryField(f, 'e'))).toEqual(expected);
    expect(globalStream.map(([, f]) => historyEntryField(f, 'e'))).toEqual(expected);
  });

  it('puts an event in history before any subscriber can see it live', async () => {
    const keys = namespace();
    const job = randomUUID();
    const reader = new Redis(server.url);
    const sub = new Redis(server.url);
    subscribers.push(sub, reader);
    const checks: Promise<boolean>[] = [];
    sub.on('message', (_channel: string, message: string) => {
      const seq = decodeEvent(message).seq;
      checks.push(
        reader
          .xrange(keys.jobHistoryKey(job), jobHistoryEntryId(seq), jobHistoryEntryId(seq))
          .then((entries) => entries.length === 1),
      );
    });
    await sub.subscribe(keys.jobChannel(job));
    const p = publisher(keys);
    for (let i = 0; i < 20; i++) await p.publish(started(job));
    await waitFor('20 live events', () => checks.length >= 20);
    expect(await Promise.all(checks)).toEqual(Array.from({ length: 20 }, () => true));
  });

  it("appends seq to the draft's JSON as text: field order kept, an empty template_ids stays []", async () => {
    const keys = namespace();
    const job = randomUUID();
    const draft = completed(job, []);
    await publisher(keys).publish(draft);
    const [[, fields] = ['', []]] = await redis.xrange(keys.jobHistoryKey(job), '-', '+');
    const json = historyEntryField(fields, 'e') ?? '';
    expect(json).toBe(expectedJson(draft, 1));
    expect(json).toContain('"template_ids":[]');
    expect(Object.keys(JSON.parse(json) as object)).toEqual([...Object.keys(draft), 'seq']);
    expect(decodeEvent(json)).toMatchObject({ template_ids: [], seq: 1 });
  });

  it('keeps quotes, braces, escapes and non-ASCII text in the event intact', async () => {
    const keys = namespace();
    const job = randomUUID();
    const message = 'Generator said "no" } {"seq":99} \\ \n ünïcødé 🚀 \u0001';
    const draft = failed(job, message);
    await publisher(keys).publish(draft);
    const [[, fields] = ['', []]] = await redis.xrange(keys.jobHistoryKey(job), '-', '+');
    const json = historyEntryField(fields, 'e') ?? '';
    expect(json).toBe(expectedJson(draft, 1));
    expect(decodeEvent(json)).toMatchObject({ error_message: message, seq: 1 });
  });

  it("gives the job's stream entry id 0-{seq} and field g, the event's id in the global stream", async () => {
    const keys = namespace();
    const job = randomUUID();
    const other = randomUUID();
    const p = publisher(keys);
    await p.publish(queued(job));
    await p.publish(queued(other));
    await p.publish(started(job));

    const jobStream = await redis.xrange(keys.jobHistoryKey(job), '-', '+');
    expect(jobStream.map(([id]) => id)).toEqual(['0-1', '0-2']);
    const globalStream = new Map(
      (await redis.xrange(keys.globalHistoryKey, '-', '+')).map(([id, f]) => [id, f]),
    );
    expect(globalStream.size).toBe(3);
    for (const [, fields] of jobStream) {
      const gid = historyEntryField(fields, 'g') ?? '';
      expect(gid).toMatch(/^\d+-\d+$/);
      expect(historyEntryField(globalStream.get(gid) ?? [], 'e')).toBe(
        historyEntryField(fields, 'e'),
      );
    }
  });

  it("gives a job's history and seq counter a TTL of at most historyTtlSeconds", async () => {
    const keys = namespace();
    const job = randomUUID();
    const p = publisher(keys, { historyTtlSeconds: 120 });
    await p.publish(queued(job));
    await p.publish(started(job));
    for (const key of [keys.jobHistoryKey(job), keys.jobSeqKey(job)]) {
      const ttl = await redis.ttl(key);
      expect(ttl, key).toBeGreaterThan(0);
      expect(ttl, key).toBeLessThanOrEqual(120);
    }
  });

  it("keeps the draft of the text being written alive as long as the job's history", async () => {
    const keys = namespace();
    const job = randomUUID();
    const p = publisher(keys, { historyTtlSeconds: 120 });
    await p.publish(started(job));
    await p.publish({
      event_type: 'job:delta',
      timestamp: T0,
      job_id: job,
      client_id: CLIENT_ID,
      status: 'running',
      template_index: 0,
      template_kind: 'outreach_email',
      delta: 'Hello',
    });
    const draft = keys.jobDraftKey(job);
    await redis.expire(draft, 5);
    // An event that leaves the text as it is (a worker handing the job back, another starting it).
    await p.publish(queued(job));
    expect(await redis.ttl(draft)).toBeGreaterThan(5);
    expect(await redis.hget(draft, 't')).toBe('Hello');
  });

  it('lets a job history and its counter expire after historyTtlSeconds', async () => {
    const keys = namespace();
    const job = randomUUID();
    await publisher(keys, { historyTtlSeconds: 1 }).publish(queued(job));
    await waitFor(
      'the job history to expire',
      async () => (await redis.exists(keys.jobHistoryKey(job), keys.jobSeqKey(job))) === 0,
      { timeoutMs: 5000, intervalMs: 100 },
    );
    // Another process, which never published for this job, starts its seq afresh.
    expect((await publisher(keys).publish(queued(job))).seq).toBe(1);
  });

  it('never hands out a seq lower than one it already published for the job, though Redis lost the counter', async () => {
    const keys = namespace();
    const job = randomUUID();
    const p = publisher(keys);
    await p.publish(queued(job));
    await p.publish(started(job));
    await redis.del(keys.jobSeqKey(job), keys.jobHistoryKey(job));
    expect((await p.publish(completed(job))).seq).toBe(3);
    expect(await redis.get(keys.jobSeqKey(job))).toBe('3');
    expect((await redis.xrange(keys.jobHistoryKey(job), '-', '+')).map(([id]) => id)).toEqual([
      '0-3',
    ]);
    // Another publisher sharing the counter continues from there.
    expect((await publisher(keys).publish(completed(job))).seq).toBe(4);
  });

  it('caps the job and global streams approximately at maxPerJob and maxGlobal, keeping the newest', async () => {
    const keys = namespace();
    const job = randomUUID();
    const p = publisher(keys, { maxPerJob: 10, maxGlobal: 50 });
    const total = 600;
    for (let i = 0; i < total; i++) await p.publish(started(job));

    // MAXLEN ~ trims whole stream nodes (100 entries by default), so a stream may exceed its
    // cap by up to one node, but never grows with the number of events.
    const node = Number((await redis.config('GET', 'stream-node-max-entries'))[1] ?? 100);
    const jobLength = await redis.xlen(keys.jobHistoryKey(job));
    const globalLength = await redis.xlen(keys.globalHistoryKey);
    expect(jobLength).toBeGreaterThanOrEqual(10);
    expect(jobLength).toBeLessThanOrEqual(10 + node);
    expect(globalLength).toBeGreaterThanOrEqual(50);
    expect(globalLength).toBeLessThanOrEqual(50 + node);

    const [[lastId] = ['']] = await redis.xrevrange(keys.jobHistoryKey(job), '+', '-', 'COUNT', 1);
    expect(lastId).toBe(jobHistoryEntryId(total));
    const [[, lastGlobal] = ['', []]] = await redis.xrevrange(
      keys.globalHistoryKey,
      '+',
      '-',
      'COUNT',
      1,
    );
    expect(decodeEvent(historyEntryField(lastGlobal, 'e') ?? '').seq).toBe(total);
  });
});
