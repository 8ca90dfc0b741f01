import { EventSource } from 'eventsource';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createEventStreamParser } from '../../../src/client/read-event-stream.js';
import { createKeyspace } from '../../../src/contract/index.js';
import { createLogger } from '../../../src/common/logger.js';
import { startMare, type MareService } from '../../../src/mare/mare-service.js';
import { openSse, payloads } from '../../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import { expectWholeRun, type EventData as Event } from '../../helpers/events.js';

/**
 * Drill 3: mare-api restarts while clients stream. They reconnect with Last-Event-ID and get
 * exactly the events they missed, none twice: with the `eventsource` package (a client that
 * follows the spec) and with the project's own SSE parser. When the history they ask for has
 * expired, they get an explicit resync instead of silence.
 */

let system: TestSystem | undefined;
let restarted: MareService | undefined;
const sources: EventSource[] = [];

afterEach(async () => {
  for (const source of sources.splice(0)) source.close();
  await restarted?.close();
  restarted = undefined;
  await system?.close();
  system = undefined;
});

/** Stops the system's gateway and starts a new one on the same port, as a redeploy would. */
async function restartGateway(sys: TestSystem): Promise<MareService> {
  const port = Number(new URL(sys.mareUrl).port);
  await sys.mare.close();
  const logger = createLogger(sys.config.common);
  return startMare({
    common: sys.config.common,
    mare: { ...sys.config.mare, tritonApiUrl: sys.tritonUrl },
    logger,
    port,
  });
}

async function submit(sys: TestSystem, clientId: string): Promise<string> {
  const res = await http<{ job_id: string }>(
    'POST',
    `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  expect(res.status).toBe(202);
  return res.body.job_id;
}

describe('mare-api restarted mid-stream', () => {
  it(
    'an EventSource (the eventsource package) resumes with Last-Event-ID and gets every event exactly once',
    { timeout: 60_000 },
    async () => {
      system = await startSystem({ env: { GENERATION_STEP_MS: '150', SSE_RETRY_MS: '100' } });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);

      // The all-jobs stream is open before the job exists, so it must see all of it.
      const everything: Array<{ id: string; data: Event }> = [];
      const global = new EventSource(`${sys.mareUrl}/v1/triton/events`);
      sources.push(global);
      global.onmessage = (message) => {
        everything.push({
          id: message.lastEventId,
          data: JSON.parse(message.data as string) as Event,
        });
      };
      await waitFor('the all-jobs stream to open', () => global.readyState === EventSource.OPEN);
      const jobId = await submit(sys, clientId);
      const ofJob = () => everything.filter((r) => r.data.job_id === jobId);

      const received: Array<{ id: string; data: Event }> = [];
      let opens = 0;
      const source = new EventSource(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      sources.push(source);
      source.onopen = () => opens++;
      source.onmessage = (message) =>
        received.push({
          id: message.lastEventId,
          data: JSON.parse(message.data as string) as Event,
        });

      await waitFor('a few events before the restart', () => received.length >= 3);
      restarted = await restartGateway(sys);

      // The job's stream ends after job:completed; the EventSource reconnects once more, is told
      // 204 (nothing more to come) and stops for good.
      await waitFor('the EventSource to stop', () => source.readyState === EventSource.CLOSED, {
        timeoutMs: 30_000,
      });
      const seqs = received.map((r) => r.data.seq);
      expectWholeRun(received.map((r) => r.data));
      expect(received.map((r) => r.id)).toEqual(seqs.map(String));
      expect(opens).toBeGreaterThanOrEqual(2);

      // The all-jobs stream resumed too (ids `{job_id}:{seq}:{stream_id}`), without a gap or a
      // repeat.
      await waitFor('the all-jobs stream to see the completion', () =>
        ofJob().some((r) => r.data.event_type === 'job:completed'),
      );
      const all = ofJob();
      expect(all.map((r) => r.data.seq)).toEqual(seqs);
      expect(all.map((r) => r.id)).toEqual(
        all.map((r) => `${jobId}:${r.data.seq}:${String(r.data.stream_id)}`),
      );
    },
  );

  it(
    'a client using the project’s own SSE parser resumes from its last id with nothing lost or repeated',
    { timeout: 60_000 },
    async () => {
      system = await startSystem({ env: { GENERATION_STEP_MS: '150', SSE_RETRY_MS: '100' } });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const jobId = await submit(sys, clientId);

      const first = await openSse(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      await first.waitForEvents(3);
      restarted = await restartGateway(sys);
      await first.ended;
      // The gateway told the client when to come back before closing.
      expect(first.retries.at(-1)).toBe(100);
      const lastId = first.events.at(-1)?.id;
      expect(lastId).toBeDefined();

      const second = await openSse(`${restarted.url}/v1/triton/jobs/${jobId}/subscribe`, {
        lastEventId: lastId,
      });
      await second.ended;
      expectWholeRun([...payloads<Event>(first), ...payloads<Event>(second)]);
      expect(second.comments.at(-1)).toBe('Connection closing - job completed');
    },
  );
});

/** A job run to completion whose event history then expired (deleted, as its TTL would). */
async function finishedJobWithoutHistory(
  sys: TestSystem,
): Promise<{ clientId: string; jobId: string }> {
  const clientId = await createClientWithProposition(sys.tritonUrl);
  const jobId = await submit(sys, clientId);
  const done = await openSse(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
  await done.ended;
  const redis = new Redis(sys.redis.url);
  await redis.del(createKeyspace().jobHistoryKey(jobId));
  redis.disconnect();
  return { clientId, jobId };
}

describe('resuming after the history expired', () => {
  it(
    'a job stream resyncs with a job:snapshot of the finished job instead of silence',
    { timeout: 60_000 },
    async () => {
      system = await startSystem();
      const sys = system;
      const { jobId } = await finishedJobWithoutHistory(sys);

      const resumed = await openSse(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`, {
        lastEventId: '3',
      });
      await resumed.ended;
      const [snapshot] = payloads<Event & { template_count: number }>(resumed);
      expect(snapshot).toMatchObject({
        event_type: 'job:snapshot',
        job_id: jobId,
        status: 'completed',
        template_count: 7,
      });
      expect(resumed.comments.at(-1)).toBe('Connection closing - job completed');
    },
  );

  it(
    'the all-jobs stream says resync (a named event) and carries on live',
    { timeout: 60_000 },
    async () => {
      system = await startSystem();
      const sys = system;
      const { clientId, jobId } = await finishedJobWithoutHistory(sys);

      const resumed = await openSse(`${sys.mareUrl}/v1/triton/events`, {
        lastEventId: `${jobId}:3`,
      });
      await resumed.waitForEvents(1);
      const [resync] = resumed.events;
      expect(resync?.event).toBe('resync');
      expect(JSON.parse(resync?.data ?? '{}')).toMatchObject({ event_type: 'stream:resync' });
      // An empty id resets the client's last event id: its next reconnect starts afresh.
      const parser = createEventStreamParser({ onEvent: () => undefined }, `${jobId}:3`);
      parser.feed(resumed.raw);
      expect(parser.lastId).toBe('');

      const next = await submit(sys, clientId);
      await waitFor('live events after the resync', () =>
        resumed.events.some(
          (e) => e.event === 'message' && (JSON.parse(e.data) as Event).job_id === next,
        ),
      );
      resumed.close();
    },
  );
});
