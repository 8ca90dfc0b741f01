import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyspace } from '../../../src/contract/index.js';
import { createLogger } from '../../../src/common/logger.js';
import { EventPublisher } from '../../../src/triton/events/event-publisher.js';
import { openSse, payloads } from '../../helpers/sse-client.js';
import { StalledClient } from '../../helpers/stalled-client.js';
import { startSystem, type TestSystem } from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import type { EventData as Event } from '../../helpers/events.js';

/**
 * Drill 4: a client that stops reading must neither grow the gateway's memory without bound
 * nor slow the others. Its events wait in a bounded queue where a job's progress coalesces
 * (latest wins) and lifecycle events are kept; past the bound it is cut and can resume.
 */

let system: TestSystem;
let publisherRedis: Redis;
let publisher: EventPublisher;
const clientId = randomUUID();

beforeAll(async () => {
  system = await startSystem({
    env: {
      SSE_HIGH_WATER_BYTES: '16384',
      SSE_MAX_PENDING_EVENTS: '32',
      SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
    },
  });
  publisherRedis = new Redis(system.redis.url, { maxRetriesPerRequest: null });
  publisher = new EventPublisher({
    redis: publisherRedis,
    keyspace: createKeyspace(),
    logger: createLogger(system.config.common),
  });
});

afterAll(async () => {
  publisherRedis?.disconnect();
  await system?.close();
});

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${system.mareUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
}

const now = () => new Date().toISOString();

function progress(jobId: string, done: number, total: number, padding: string) {
  return publisher.publish({
    event_type: 'job:progress',
    timestamp: now(),
    job_id: jobId,
    client_id: clientId,
    status: 'running',
    progress: Math.floor((done * 100) / total),
    templates_done: done,
    templates_total: total,
    // A large payload fills socket buffers quickly.
    template_id: `${done}-${padding}`,
  });
}

describe('a client that stops reading', () => {
  it(
    'gets its job’s progress coalesced and every lifecycle event once it reads again, and others miss nothing',
    { timeout: 90_000 },
    async () => {
      const jobId = randomUUID();
      await publisher.publish({
        event_type: 'job:queued',
        timestamp: now(),
        job_id: jobId,
        client_id: clientId,
        status: 'queued',
      });
      const url = `${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`;
      const stalled = new StalledClient(url);
      const healthy = await openSse(url);
      await waitFor('the stalled client’s first event', () => stalled.events().length >= 1);
      stalled.pause();

      const progressOnJobChannel = 'event_type="job:progress",channel="job"';
      const before = await metric('mare_events_received_total', progressOnJobChannel);
      const total = 150;
      const padding = 'x'.repeat(64 * 1024);
      await publisher.publish({
        event_type: 'job:started',
        timestamp: now(),
        job_id: jobId,
        client_id: clientId,
        status: 'running',
        started_at: now(),
      });
      for (let done = 1; done <= total; done++) await progress(jobId, done, total, padding);
      await publisher.publish({
        event_type: 'job:completed',
        timestamp: now(),
        job_id: jobId,
        client_id: clientId,
        status: 'completed',
        template_ids: [],
        template_count: 0,
        generation_duration_ms: 1,
        completed_at: now(),
      });

      // The healthy client is not held back by the stalled one.
      await healthy.ended;
      expect(payloads<Event>(healthy).filter((e) => e.event_type === 'job:progress')).toHaveLength(
        total,
      );
      await waitFor(
        'the gateway to have dispatched everything',
        async () =>
          (await metric('mare_events_received_total', progressOnJobChannel)) - before === total,
      );

      stalled.resume();
      await stalled.closed;
      const got = stalled.events().map((e) => JSON.parse(e.data) as Event);
      const types = got.map((e) => e.event_type);
      expect(types[0]).toBe('job:queued');
      expect(types).toContain('job:started');
      expect(types.at(-1)).toBe('job:completed');
      const progressEvents = got.filter((e) => e.event_type === 'job:progress');
      // Coalesced: fewer progress events than were published, the latest one among them, in order.
      expect(progressEvents.length).toBeLessThan(total);
      expect(progressEvents.at(-1)?.progress).toBe(100);
      const seqs = got.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(stalled.text).toContain(': Connection closing - job completed');
    },
  );

  it(
    'is cut loose once too many events wait for it, while the other clients get everything',
    { timeout: 90_000 },
    async () => {
      const url = `${system.mareUrl}/v1/triton/events`;
      const stalled = new StalledClient(url);
      const others = await Promise.all(Array.from({ length: 3 }, () => openSse(url)));
      await waitFor('the stalled client to be connected', () => stalled.text.includes('retry:'));
      stalled.pause();
      const cutBefore = await metric('mare_sse_rejected_total', 'slow_consumer');

      // Progress of many different jobs: nothing to coalesce, so the queue fills up.
      const jobs = Array.from({ length: 400 }, () => randomUUID());
      const padding = 'y'.repeat(32 * 1024);
      for (const jobId of jobs) await progress(jobId, 1, 7, padding);

      await waitFor(
        'the stalled client to be cut',
        async () => (await metric('mare_sse_rejected_total', 'slow_consumer')) > cutBefore,
      );
      for (const sse of others) {
        await waitFor('every event at a healthy client', () => sse.events.length >= jobs.length);
        expect(new Set(payloads<Event>(sse).map((e) => e.job_id))).toEqual(new Set(jobs));
      }
      // The gateway keeps serving: the cut client's slot is free and the others are still connected.
      expect(system.mare.hub.size).toBe(others.length);
      stalled.destroy();
      for (const sse of others) sse.close();
    },
  );
});
