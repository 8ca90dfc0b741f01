import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyspace } from '../../src/contract/index.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import { connectTo } from '../helpers/redis.js';
import { createClientWithProposition, http, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import {
  COMPLETED_LIFECYCLE,
  expectWholeRun,
  seqRange,
  textsFromDeltas,
  withoutDeltas,
  type EventData as Event,
} from '../helpers/events.js';

/**
 * The original system's testing guide (Tests 1–7), step by step, against the real system: real
 * Redis (a single server, one behind Sentinel, or a cluster), real Postgres, real HTTP. `start` brings the system up.
 * "seed" in the names here means that guide: this is the compatibility suite (docs/contract.md).
 */
export function seedWalkthrough(start: () => Promise<{ system: TestSystem; cluster: boolean }>) {
  const keys = createKeyspace();
  let system: TestSystem;
  let cluster: boolean;
  let clientId: string;
  /** A plain `SUBSCRIBE triton:jobs:all` on one node, as in the guide's Terminal 1. */
  let monitor: Redis;
  const monitored: Event[] = [];

  /** A connection for reading keys: on a cluster, one that follows each key to its node. */
  function keyReader(): Redis | Cluster {
    if (!cluster) return connectTo(system.redis.url);
    const { hostname, port } = new URL(system.redis.url);
    return new Cluster([{ host: hostname, port: Number(port) }]);
  }

  function eventsOf(jobId: string): Event[] {
    return monitored.filter((e) => e.job_id === jobId);
  }

  async function submit(id = clientId): Promise<string> {
    const res = await http<{ job_id: string; status: string }>(
      'POST',
      `${system.mareUrl}/v1/triton/clients/${id}/generate-templates`,
      undefined,
      { 'content-type': 'application/json' },
    );
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('queued');
    return res.body.job_id;
  }

  async function waitForTerminal(jobId: string): Promise<Event> {
    return waitFor(`terminal event of ${jobId}`, () =>
      eventsOf(jobId).find(
        (e) => e.event_type === 'job:completed' || e.event_type === 'job:failed',
      ),
    );
  }

  /** The count of requests triton-api has served on a route, from its own metrics. */
  async function tritonRequests(route: string): Promise<number> {
    const res = await fetch(`${system.tritonUrl}/metrics`);
    const text = await res.text();
    let total = 0;
    for (const line of text.split('\n')) {
      if (
        line.startsWith('triton_http_request_duration_seconds_count{') &&
        line.includes(`route="${route}"`)
      ) {
        total += Number(line.split(' ').pop());
      }
    }
    return total;
  }

  beforeAll(async () => {
    ({ system, cluster } = await start());
    clientId = await createClientWithProposition(system.tritonUrl);
    monitor = connectTo(system.redis.url);
    monitor.on('message', (_channel: string, message: string) =>
      monitored.push(JSON.parse(message) as Event),
    );
    await monitor.subscribe(keys.allJobsChannel);
  });

  afterAll(async () => {
    monitor?.disconnect();
    await system?.close();
  });

  describe('the seed testing guide', () => {
    it('Test 1: a plain SUBSCRIBE to triton:jobs:all sees started, progress and completed with every seed field', async () => {
      const jobId = await submit();
      const completed = await waitForTerminal(jobId);
      const all = eventsOf(jobId);
      // Between them, job:delta events carry each template's text as it is written.
      const events = withoutDeltas(all);
      expect(events.map((e) => e.event_type)).toEqual(COMPLETED_LIFECYCLE);
      expectWholeRun(all);
      expect(all.length).toBeGreaterThan(events.length);

      const started = events[1]!;
      expect(Object.keys(started)).toEqual([
        'event_type',
        'timestamp',
        'job_id',
        'client_id',
        'status',
        'started_at',
        'seq',
        // The all-jobs channel adds the event's position in the global history.
        'stream_id',
      ]);
      expect(started).toMatchObject({ job_id: jobId, client_id: clientId, status: 'running' });

      expect(Object.keys(completed)).toEqual([
        'event_type',
        'timestamp',
        'job_id',
        'client_id',
        'status',
        'template_ids',
        'template_count',
        'generation_duration_ms',
        'completed_at',
        'usage',
        'seq',
        'stream_id',
      ]);
      expect(completed.status).toBe('completed');
      expect(completed.template_count).toBe(7);
      expect(completed.template_ids).toHaveLength(7);
      expect(completed.generation_duration_ms).toBeGreaterThan(0);
      for (const e of events)
        expect(new Date(e.timestamp as string).toISOString()).toBe(e.timestamp);

      const progress = events.filter((e) => e.event_type === 'job:progress');
      expect(progress.map((e) => e.progress)).toEqual([14, 28, 42, 57, 71, 85, 100]);
      expect(progress.map((e) => e.template_id)).toEqual(completed.template_ids);
    });

    it('Test 2: the finished job is cached under triton:job:result:{id} with a TTL within the hour', async () => {
      const jobId = await submit();
      await waitForTerminal(jobId);
      const redis = keyReader();
      try {
        const key = keys.jobResultKey(jobId);
        expect(key).toBe(`triton:job:result:${jobId}`);
        const cached = await waitFor('the cached result', () =>
          redis.get(key).then((v) => v ?? undefined),
        );
        expect(JSON.parse(cached)).toMatchObject({
          job_id: jobId,
          status: 'completed',
          template_count: 7,
        });
        const ttl = await redis.ttl(key);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(3600);
      } finally {
        redis.disconnect();
      }
    });

    it('Test 3: a cached lookup answers without a request to triton-api', async () => {
      const jobId = await submit();
      await waitForTerminal(jobId);
      const redis = keyReader();
      await waitFor('the cached result', () =>
        redis.exists(keys.jobResultKey(jobId)).then((n) => n === 1),
      );
      redis.disconnect();

      const before = await tritonRequests('/jobs/:job_id');
      for (let i = 0; i < 5; i++) {
        const res = await http<Record<string, unknown>>(
          'GET',
          `${system.mareUrl}/v1/triton/jobs/${jobId}`,
        );
        expect(res.status).toBe(200);
        expect(res.headers.get('x-cache')).toBe('hit');
        expect(res.body).toMatchObject({ job_id: jobId, status: 'completed', template_count: 7 });
        expect(Object.keys(res.body)).toEqual(
          expect.arrayContaining([
            'job_id',
            'status',
            'template_ids',
            'template_count',
            'generation_duration_ms',
          ]),
        );
      }
      expect(await tritonRequests('/jobs/:job_id')).toBe(before);
    });

    it('Test 3: the cached answer is the same whether the fast path or the router serves it', async () => {
      const jobId = await submit();
      await waitForTerminal(jobId);
      const redis = keyReader();
      await waitFor('the cached result', () =>
        redis.exists(keys.jobResultKey(jobId)).then((n) => n === 1),
      );
      redis.disconnect();
      // A query string takes the lookup through the router instead of the fast path.
      const fast = await fetch(`${system.mareUrl}/v1/triton/jobs/${jobId.toUpperCase()}`);
      const routed = await fetch(`${system.mareUrl}/v1/triton/jobs/${jobId}?via=router`);
      expect(fast.status).toBe(200);
      expect(routed.status).toBe(200);
      expect(await fast.text()).toBe(await routed.text());
      for (const header of [
        'content-type',
        'content-length',
        'x-cache',
        'access-control-allow-origin',
        'access-control-expose-headers',
      ]) {
        expect(fast.headers.get(header), header).toBe(routed.headers.get(header));
      }
    });

    it('Test 3, miss: a job that is not cached yet is answered by triton-api', async () => {
      const jobId = await submit();
      const before = await tritonRequests('/jobs/:job_id');
      const res = await http<Record<string, unknown>>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/${jobId}`,
      );
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('miss');
      expect(res.body.job_id).toBe(jobId);
      expect(await tritonRequests('/jobs/:job_id')).toBe(before + 1);
      await waitForTerminal(jobId);
    });

    it('Test 4: SSE streams started to completed and closes by itself with the seed comment', async () => {
      const jobId = await submit();
      const sse = await openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      expect(sse.status).toBe(200);
      expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(sse.headers.get('cache-control')).toContain('no-cache');
      expect(sse.headers.get('x-accel-buffering')).toBe('no');
      await sse.ended;
      const got = payloads<Event>(sse);
      expect(got[0]?.event_type).toBe('job:queued');
      expect(got.map((e) => e.event_type)).toContain('job:started');
      expect(got.at(-1)?.event_type).toBe('job:completed');
      expect(sse.events.map((e) => e.id)).toEqual(got.map((e) => String(e.seq)));
      expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
      expect(sse.raw.endsWith(': Connection closing - job completed\n\n')).toBe(true);
      // No `event:` field: a browser's EventSource.onmessage sees every event.
      expect(sse.events.every((e) => e.event === 'message')).toBe(true);
    });

    it('Test 6: two SSE subscribers and a lookup on one job all see the completion', async () => {
      const jobId = await submit();
      const [a, b] = await Promise.all([
        openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`),
        openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`),
      ]);
      await Promise.all([a.ended, b.ended]);
      const lookup = await http<{ status: string }>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/${jobId}`,
      );
      expect(payloads<Event>(a)).toEqual(payloads<Event>(b));
      expect(payloads<Event>(a).at(-1)?.status).toBe('completed');
      expect(lookup.body.status).toBe('completed');
    });

    it('Test 7: a job for the all-zero client id fails, and the failure is published and cached', async () => {
      const zero = '00000000-0000-0000-0000-000000000000';
      const jobId = await submit(zero);
      const failed = await waitForTerminal(jobId);
      expect(failed).toMatchObject({
        event_type: 'job:failed',
        status: 'failed',
        job_id: jobId,
        client_id: zero,
      });
      expect(failed.error_message).toMatch(
        /client 00000000-0000-0000-0000-000000000000 does not exist/,
      );
      expect(Object.keys(failed)).toEqual([
        'event_type',
        'timestamp',
        'job_id',
        'client_id',
        'status',
        'error_message',
        'generation_duration_ms',
        'completed_at',
        // The templates stored before the failure (none here) and what the model calls cost.
        'template_ids',
        'template_count',
        'usage',
        'seq',
        'stream_id',
      ]);
      const redis = keyReader();
      try {
        const cached = await waitFor('the cached failure', () =>
          redis.get(keys.jobResultKey(jobId)).then((v) => v ?? undefined),
        );
        expect(JSON.parse(cached)).toMatchObject({
          status: 'failed',
          error_message: failed.error_message,
        });
      } finally {
        redis.disconnect();
      }
      const lookup = await http<{ status: string; error_message: string }>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/${jobId}`,
      );
      expect(lookup.body).toMatchObject({ status: 'failed', error_message: failed.error_message });

      const sse = await openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      await sse.ended;
      expect(payloads<Event>(sse).at(-1)?.event_type).toBe('job:failed');
      expect(sse.comments.at(-1)).toBe('Connection closing - job failed');
    });

    it('a client with no active value proposition gets a job that fails saying so', async () => {
      const created = await http<{ id: string }>('POST', `${system.tritonUrl}/clients/`, {
        name: 'No Proposition Ltd',
        industry: 'Retail',
      });
      const jobId = await submit(created.body.id);
      const failed = await waitForTerminal(jobId);
      expect(failed.event_type).toBe('job:failed');
      expect(failed.error_message).toMatch(/has no active value proposition/);
    });
  });

  describe('history and resume', () => {
    it('a subscriber that joins after completion gets the whole history at once and the stream closes', async () => {
      const jobId = await submit();
      await waitForTerminal(jobId);
      const started = Date.now();
      const sse = await openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      await sse.ended;
      expect(Date.now() - started).toBeLessThan(5000);
      expectWholeRun(payloads<Event>(sse));
      expect(withoutDeltas(payloads<Event>(sse)).map((e) => e.event_type)).toEqual(
        COMPLETED_LIFECYCLE,
      );
      expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
    });

    it('a subscriber that joins mid-job gets seq 1, 2, 3… with no gap and no repeat', async () => {
      const jobId = await submit();
      await waitFor('the job to be half done', () =>
        eventsOf(jobId).some((e) => e.event_type === 'job:progress' && (e.progress ?? 0) >= 50),
      );
      const sse = await openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      await sse.ended;
      expectWholeRun(payloads<Event>(sse));
      expect(withoutDeltas(payloads<Event>(sse)).map((e) => e.event_type)).toEqual(
        COMPLETED_LIFECYCLE,
      );
    });

    it('Last-Event-ID (header or query) resumes after that event', async () => {
      const jobId = await submit();
      await waitForTerminal(jobId);
      const last = eventsOf(jobId).at(-1)?.seq ?? 0;
      const byHeader = await openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`, {
        lastEventId: '4',
      });
      await byHeader.ended;
      expect(payloads<Event>(byHeader).map((e) => e.seq)).toEqual(seqRange(5, last));
      const byQuery = await openSse(
        `${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe?last_event_id=${last - 2}`,
      );
      await byQuery.ended;
      expect(payloads<Event>(byQuery).map((e) => e.seq)).toEqual([last - 1, last]);
    });

    it('a client that already has the terminal event is told to stop reconnecting (204)', async () => {
      const jobId = await submit();
      const terminal = await waitForTerminal(jobId);
      const res = await fetch(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`, {
        headers: { 'last-event-id': String(terminal.seq) },
      });
      expect(res.status).toBe(204);
    });

    it('a Last-Event-ID beyond the job history resyncs with a snapshot instead of waiting forever', async () => {
      const jobId = await submit();
      const terminal = await waitForTerminal(jobId);
      const sse = await openSse(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`, {
        lastEventId: '999',
      });
      await sse.ended;
      const [snapshot] = payloads<Event>(sse);
      expect(snapshot).toMatchObject({
        event_type: 'job:snapshot',
        status: 'completed',
        seq: terminal.seq,
        template_count: 7,
      });
      // It carries the templates' text, each exactly what its deltas said.
      const texts = textsFromDeltas(eventsOf(jobId));
      const templates = snapshot?.templates as Array<{ template_index: number; body: string }>;
      expect(templates.map((t) => t.template_index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
      for (const t of templates) expect(t.body).toBe(texts.get(t.template_index));
      expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
    });

    it('the all-jobs stream carries every job, and resumes after a Last-Event-ID', async () => {
      const all = await openSse(`${system.mareUrl}/v1/triton/events`);
      const first = await submit();
      const second = await submit();
      await waitForTerminal(first);
      await waitForTerminal(second);
      await waitFor('both jobs on the all-jobs stream', () =>
        [first, second].every((id) =>
          payloads<Event>(all).some((e) => e.job_id === id && e.event_type === 'job:completed'),
        ),
      );
      all.close();
      const seen = payloads<Event>(all).filter((e) => e.job_id === first || e.job_id === second);
      for (const id of [first, second]) {
        expectWholeRun(seen.filter((e) => e.job_id === id));
      }
      // Each id is the event and its position in the global history.
      for (const e of all.events) {
        const { job_id, seq, stream_id } = JSON.parse(e.data) as Event;
        expect(e.id).toBe(`${String(job_id)}:${String(seq)}:${String(stream_id)}`);
        expect(e.id).toMatch(/^[0-9a-f-]{36}:\d+:\d+-\d+$/);
      }

      // Resume after the fifth event of the first job: everything published later, nothing before.
      const anchorIndex = all.events.findIndex((e) => e.id?.startsWith(`${first}:5:`));
      const anchor = all.events[anchorIndex]?.id ?? '';
      const resumed = await openSse(`${system.mareUrl}/v1/triton/events`, { lastEventId: anchor });
      const expected = all.events.slice(anchorIndex + 1).map((e) => e.id);
      await resumed.waitForEvents(expected.length);
      resumed.close();
      expect(resumed.events.slice(0, expected.length).map((e) => e.id)).toEqual(expected);
    });
  });

  describe('bad input', () => {
    it('answers malformed ids, unknown jobs and bad Last-Event-IDs with clear 4xx JSON errors', async () => {
      const bad = await http<{ error: { code: string } }>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/not-a-uuid`,
      );
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe('INVALID_ID');

      const unknown = await http<{ error: { code: string } }>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/00000000-0000-4000-8000-000000000001`,
      );
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('JOB_NOT_FOUND');

      const unknownStream = await http<{ error: { code: string } }>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/00000000-0000-4000-8000-000000000001/subscribe`,
      );
      expect(unknownStream.status).toBe(404);

      const badResume = await http<{ error: { code: string } }>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/00000000-0000-4000-8000-000000000001/subscribe`,
        undefined,
        { 'last-event-id': 'abc' },
      );
      expect(badResume.status).toBe(400);

      const badGlobal = await http<{ error: { code: string } }>(
        'GET',
        `${system.mareUrl}/v1/triton/events`,
        undefined,
        { 'last-event-id': 'nope' },
      );
      expect(badGlobal.status).toBe(400);
    });
  });

  describe("a job's own channel", () => {
    it('carries its events: a plain SUBSCRIBE on a single server, SSUBSCRIBE on a cluster', async () => {
      const jobId = await submit();
      const received: Event[] = [];
      const channel = keys.jobChannel(jobId);
      let close: () => void;
      if (cluster) {
        const { hostname, port } = new URL(system.redis.url);
        const sub = new Cluster([{ host: hostname, port: Number(port) }], {
          shardedSubscribers: true,
        });
        sub.on('smessage', (_c: string, m: string) => received.push(JSON.parse(m) as Event));
        await sub.ssubscribe(channel);
        close = () => sub.disconnect();
      } else {
        const sub = connectTo(system.redis.url);
        sub.on('message', (_c: string, m: string) => received.push(JSON.parse(m) as Event));
        await sub.subscribe(channel);
        close = () => sub.disconnect();
      }
      try {
        await waitFor('the job to end on its channel', () =>
          received.some((e) => e.event_type === 'job:completed'),
        );
        // Subscribed after the submission: the events from then on, in order, none twice.
        const seqs = received.map((e) => e.seq);
        expect(seqs).toEqual(seqRange(seqs[0] ?? 1, seqs.at(-1) ?? 0));
        expect(received.every((e) => e.job_id === jobId && e.stream_id === undefined)).toBe(true);
      } finally {
        close();
      }
    });

    it('an all-jobs Last-Event-ID of the older form {job_id}:{seq} resumes where the job history keeps its position, and resyncs where it does not (a cluster)', async () => {
      const jobId = await submit();
      const terminal = await waitForTerminal(jobId);
      const resumed = await openSse(`${system.mareUrl}/v1/triton/events`, {
        lastEventId: `${jobId}:${Number(terminal.seq) - 1}`,
      });
      await resumed.waitForEvents(1);
      resumed.close();
      const [first] = resumed.events;
      if (cluster) {
        expect(first?.event).toBe('resync');
      } else {
        expect(first?.id).toBe(`${jobId}:${String(terminal.seq)}:${String(terminal.stream_id)}`);
      }
    });
  });
}
