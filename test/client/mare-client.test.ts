import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  JobFailedError,
  MareApiError,
  MareClient,
  statusDocumentFromEvents,
  type AllJobsWatchItem,
  type FetchFunction,
  type JobWatchEvent,
  type StreamResync,
  type WatchStatus,
} from '../../src/client/index.js';
import type { JobStatusDocument } from '../../src/contract/index.js';
import { createClientWithProposition, startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { COMPLETED_LIFECYCLE, seqRange, withoutDeltas } from '../helpers/events.js';

/**
 * The typed client against the whole system (real Redis, real Postgres, real HTTP). Jobs take
 * 7 steps of 60 ms, long enough to cut a watch's connection in the middle of one; the gateway
 * tells clients to reconnect after 100 ms.
 */

const NIL_CLIENT = '00000000-0000-0000-0000-000000000000';

/** The seqs of a whole run: 1 to the last, each once, in order. */
function expectAllSeqs(seqs: number[]): void {
  expect(seqs).toEqual(seqRange(1, seqs.at(-1) ?? 0));
}

let system: TestSystem;
let mare: MareClient;
let clientId: string;

beforeAll(async () => {
  system = await startSystem({ env: { GENERATION_STEP_MS: '60', SSE_RETRY_MS: '100' } });
  mare = new MareClient({ baseUrl: system.mareUrl });
  clientId = await createClientWithProposition(system.tritonUrl);
});

afterAll(async () => {
  await system?.close();
});

/** A fetch that answers some requests itself and passes the rest to the real one. */
function fetchWith(
  intercept: (url: string, init: RequestInit) => Promise<Response> | undefined,
): FetchFunction {
  return (url, init) => intercept(url, init) ?? fetch(url, init);
}

describe('requests', () => {
  it('creates a client and a value proposition and lists the client', async () => {
    const client = await mare.createClient({ name: 'Acme Health', industry: 'Healthcare' });
    expect(client).toMatchObject({ name: 'Acme Health', industry: 'Healthcare' });
    const vp = await mare.createValueProposition(client.id, {
      content: 'Fewer readmissions through coordinated care',
      is_active: true,
    });
    expect(vp).toMatchObject({ client_id: client.id, is_active: true });
    const clients = await mare.listClients();
    expect(clients.map((c) => c.id)).toContain(client.id);
  });

  it('submits a job and looks up its status document', async () => {
    const accepted = await mare.generateTemplates(clientId);
    expect(accepted.status).toBe('queued');
    const doc = await mare.getJob(accepted.job_id);
    expect(doc).toMatchObject({ job_id: accepted.job_id, client_id: clientId });
    await mare.watchJob(accepted.job_id).done;
  });

  it("throws a MareApiError carrying the server's code, message and status", async () => {
    const badId = await mare.getJob('not-a-uuid').catch((err: unknown) => err);
    expect(badId).toBeInstanceOf(MareApiError);
    expect(badId).toMatchObject({ code: 'INVALID_ID', status: 400, retryable: false });

    const unknown = await mare
      .getJob('00000000-0000-4000-8000-000000000001')
      .catch((err: unknown) => err);
    expect(unknown).toMatchObject({ code: 'JOB_NOT_FOUND', status: 404 });
    expect((unknown as MareApiError).message).not.toBe('');

    const invalid = await mare
      .createClient({ name: '', industry: 'Retail' })
      .catch((err: unknown) => err);
    expect(invalid).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 });
  });

  it('reports an unreachable gateway as a retryable NETWORK_ERROR with status 0', async () => {
    const nowhere = new MareClient({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 2000 });
    const err = await nowhere.getJob(NIL_CLIENT).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NETWORK_ERROR', status: 0, retryable: true });
  });
});

describe('watchJob', () => {
  it('follows a job to completion through its callbacks, each seq once, in order', async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const events: JobWatchEvent[] = [];
    const progress: number[] = [];
    const statuses: WatchStatus[] = [];
    const errors: Error[] = [];
    let completed: JobStatusDocument | undefined;
    const watch = mare.watchJob(job_id, {
      onEvent: (e) => events.push(e),
      onProgress: (p) => progress.push(p),
      onComplete: (doc) => (completed = doc),
      onStatus: (s) => statuses.push(s),
      onError: (err) => errors.push(err),
    });
    const result = await watch.done;
    expect(errors).toEqual([]);

    expectAllSeqs(events.map((e) => e.seq));
    expect(events.at(-1)?.event_type).toBe('job:completed');
    expect(progress).toEqual([0, 14, 28, 42, 57, 71, 85, 100]);
    expect(statuses).toEqual(['open', 'closed']);
    expect(watch.status).toBe('closed');
    expect(completed).toEqual(result);
    expect(result).toMatchObject({ job_id, status: 'completed', template_count: 7 });
    // The result built from the events is the document the gateway answers (and caches).
    expect(statusDocumentFromEvents(events)).toEqual(result);
    expect(await mare.getJob(job_id)).toEqual(result);
    expect(await mare.getJobTemplates(job_id)).toHaveLength(7);
  });

  it("keeps each template's text as it is written, and it ends as the stored body", async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const seen = new Map<number, string[]>();
    const watch = mare.watchJob(job_id, {
      onText: (t) => seen.set(t.index, [...(seen.get(t.index) ?? []), t.text]),
    });
    await watch.done;
    const stored = await mare.getJobTemplates(job_id);
    expect(watch.templates.map((t) => [t.index, t.kind, t.text, t.done])).toEqual(
      stored.map((t) => [t.position, t.kind, t.body, true]),
    );
    // The text grew in steps (several deltas per template), each a prefix of the next.
    for (const t of stored) {
      const steps = seen.get(t.position) ?? [];
      expect(steps.length).toBeGreaterThan(1);
      for (const [i, text] of steps.entries()) expect(steps[i + 1] ?? t.body).toContain(text);
      expect(steps.at(-1)).toBe(t.body);
    }
  });

  it('cancels a running job: the watch ends with the cancelled document and onCancel', async () => {
    const slow = new MareClient({ baseUrl: system.mareUrl });
    const { job_id } = await slow.generateTemplates(clientId);
    let cancelledDoc: JobStatusDocument | undefined;
    const errors: Error[] = [];
    const watch = slow.watchJob(job_id, {
      onCancel: (doc) => (cancelledDoc = doc),
      onError: (err) => errors.push(err),
    });
    await waitFor('the job to start writing', () => watch.templates.some((t) => t.text.length > 0));
    const answer = await slow.cancelJob(job_id);
    expect(answer.job_id).toBe(job_id);
    const result = await watch.done;
    expect(result.status).toBe('cancelled');
    expect(cancelledDoc).toEqual(result);
    expect(errors).toEqual([]);
    // What it stored before stopping is kept and listed.
    const stored = await slow.getJobTemplates(job_id);
    expect(result.template_ids).toEqual(stored.map((t) => t.id));
    expect(result.template_count).toBeLessThan(7);
    const again = await slow.cancelJob(job_id).catch((err: unknown) => err);
    expect(again).toMatchObject({ code: 'JOB_FINISHED', status: 409 });
  });

  it('is an async iterator that ends after the terminal event', async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const seen: JobWatchEvent[] = [];
    for await (const event of mare.watchJob(job_id)) seen.push(event);
    expect(withoutDeltas(seen).map((e) => e.event_type)).toEqual(COMPLETED_LIFECYCLE);
    expectAllSeqs(seen.map((e) => e.seq));
  });

  it('survives the gateway cutting its connection mid-job: every seq exactly once, then completed', async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const seqs: number[] = [];
    const statuses: WatchStatus[] = [];
    const cutAt = new Set<number>();
    let reconnectingAt = 0;
    const reconnectDelays: number[] = [];
    const watch = mare.watchJob(job_id, {
      // Far longer than the gateway's `retry: 100`: a quick reconnect proves `retry:` is obeyed.
      retryMs: 10_000,
      onStatus: (s) => {
        statuses.push(s);
        if (s === 'reconnecting') reconnectingAt = Date.now();
        if (s === 'open' && reconnectingAt) reconnectDelays.push(Date.now() - reconnectingAt);
      },
      onEvent: (e) => {
        seqs.push(e.seq);
        // Cut every stream twice mid-job, as a gateway restart or a proxy timeout would.
        if ((e.seq === 4 || e.seq === 12) && !cutAt.has(e.seq)) {
          cutAt.add(e.seq);
          system.mare.hub.closeAll();
        }
      },
    });
    const result = await watch.done;
    expect(cutAt).toEqual(new Set([4, 12]));
    expect(result.status).toBe('completed');
    expectAllSeqs(seqs);
    // The text survived the cuts whole.
    const stored = await mare.getJobTemplates(job_id);
    expect(watch.templates.map((t) => t.text)).toEqual(stored.map((t) => t.body));
    // At least one cut landed before the job's end (on a busy machine both may not).
    expect(statuses.filter((s) => s === 'open').length).toBeGreaterThanOrEqual(2);
    expect(statuses).toContain('reconnecting');
    for (const delay of reconnectDelays) expect(delay).toBeLessThan(3000);
  });

  it('resumes after a given lastEventId with only the later events', async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const whole = mare.watchJob(job_id);
    const all: number[] = [];
    for await (const event of whole) all.push(event.seq);
    const seen: number[] = [];
    for await (const event of mare.watchJob(job_id, { lastEventId: 6 })) seen.push(event.seq);
    expect(seen).toEqual(all.filter((seq) => seq > 6));
  });

  it('ends with the looked-up result when it already has the last event (204)', async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const watch = mare.watchJob(job_id);
    const first = await watch.done;
    const again = mare.watchJob(job_id, { lastEventId: watch.lastEventId });
    const seen: JobWatchEvent[] = [];
    for await (const event of again) seen.push(event);
    expect(seen.map((e) => e.event_type)).toEqual(['job:snapshot']);
    expect(await again.done).toEqual(first);
  });

  it('falls back to polling when the subscribe URL answers something other than SSE', async () => {
    const subscribes: string[] = [];
    // A proxy that turns the stream into an ordinary JSON answer.
    const client = new MareClient({
      baseUrl: system.mareUrl,
      fetch: fetchWith((url, init) => {
        if (!url.includes('/subscribe')) return undefined;
        subscribes.push(url);
        return fetch(`${system.mareUrl}/health`, { signal: init.signal ?? null });
      }),
    });
    const { job_id } = await client.generateTemplates(clientId);
    const statuses: WatchStatus[] = [];
    const events: JobWatchEvent[] = [];
    const watch = client.watchJob(job_id, {
      pollIntervalMs: 50,
      onStatus: (s) => statuses.push(s),
      onEvent: (e) => events.push(e),
    });
    const result = await watch.done;
    expect(subscribes).toHaveLength(1);
    expect(statuses).toContain('polling');
    expect(statuses).not.toContain('open');
    expect(result).toMatchObject({ job_id, status: 'completed', template_count: 7 });
    expect(events.every((e) => e.event_type === 'job:snapshot')).toBe(true);
    expect(events.at(-1)).toMatchObject({ status: 'completed', progress: 100 });
    expect(statusDocumentFromEvents(events)).toEqual(result);
  });

  it('falls back to polling after repeated connection failures', async () => {
    let refused = 0;
    const client = new MareClient({
      baseUrl: system.mareUrl,
      fetch: fetchWith((url) => {
        if (!url.includes('/subscribe')) return undefined;
        refused++;
        return Promise.reject(new TypeError('fetch failed'));
      }),
    });
    const { job_id } = await client.generateTemplates(clientId);
    const statuses: WatchStatus[] = [];
    const result = await client.watchJob(job_id, {
      retryMs: 10,
      pollIntervalMs: 50,
      sseFailuresBeforePolling: 3,
      onStatus: (s) => statuses.push(s),
    }).done;
    expect(refused).toBe(3);
    expect(statuses).toEqual(['reconnecting', 'polling', 'closed']);
    expect(result.status).toBe('completed');
  });

  it("polls only, when told to, and ends with the job's result", async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const statuses: WatchStatus[] = [];
    const result = await mare.watchJob(job_id, {
      transport: 'poll',
      pollIntervalMs: 50,
      onStatus: (s) => statuses.push(s),
    }).done;
    expect(statuses).toEqual(['polling', 'closed']);
    expect(result).toEqual(await mare.getJob(job_id));
  });

  it('reports a failed job through onError and ends the iterator with job:failed', async () => {
    const { job_id } = await mare.generateTemplates(NIL_CLIENT);
    const errors: Error[] = [];
    let completed = false;
    const watch = mare.watchJob(job_id, {
      onError: (err) => errors.push(err),
      onComplete: () => (completed = true),
    });
    const seen: JobWatchEvent[] = [];
    for await (const event of watch) seen.push(event);
    const last = seen.at(-1);
    expect(last).toMatchObject({ event_type: 'job:failed', status: 'failed' });
    expect(completed).toBe(false);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(JobFailedError);
    expect(errors[0]?.message).toMatch(
      /client 00000000-0000-0000-0000-000000000000 does not exist/,
    );
    const result = await watch.done;
    expect(result).toMatchObject({ status: 'failed', error_message: errors[0]?.message });
    expect((errors[0] as JobFailedError).result).toEqual(result);
  });

  it('ends with a JOB_NOT_FOUND error for a job nobody knows', async () => {
    const errors: Error[] = [];
    const watch = mare.watchJob('00000000-0000-4000-8000-000000000002', {
      onError: (err) => errors.push(err),
    });
    await expect(watch.done).rejects.toMatchObject({ code: 'JOB_NOT_FOUND', status: 404 });
    expect(errors).toHaveLength(1);
    await expect(async () => {
      for await (const _ of watch) {
        // nothing arrives
      }
    }).rejects.toBeInstanceOf(MareApiError);
  });

  it('stops on close() or its signal: the iterator ends and done rejects with AbortError', async () => {
    const { job_id } = await mare.generateTemplates(clientId);
    const watch = mare.watchJob(job_id);
    const seen: JobWatchEvent[] = [];
    for await (const event of watch) {
      seen.push(event);
      if (event.event_type === 'job:started') watch.close();
    }
    expect(seen.at(-1)?.event_type).toBe('job:started');
    await expect(watch.done).rejects.toMatchObject({ name: 'AbortError' });
    expect(watch.status).toBe('closed');

    const controller = new AbortController();
    controller.abort();
    const aborted = mare.watchJob(job_id, { signal: controller.signal });
    await expect(aborted.done).rejects.toMatchObject({ name: 'AbortError' });
    await mare.watchJob(job_id).done;
  });
});

describe('watchAll', () => {
  it('replays recent history, follows new jobs live, and resumes after a cut without repeats', async () => {
    const before = await mare.generateTemplates(clientId);
    await mare.watchJob(before.job_id).done;

    const items: AllJobsWatchItem[] = [];
    const statuses: WatchStatus[] = [];
    /** The job submitted while watching; empty until then. */
    const live = { jobId: '' };
    const watch = mare.watchAll({
      // Enough to reach back past whatever earlier tests left: `before` must be in it whole.
      history: 200,
      onStatus: (s) => statuses.push(s),
      onEvent: (e) => {
        // Cut the stream once, in the middle of the next job.
        if (e.job_id === live.jobId && e.seq === 5) system.mare.hub.closeAll();
      },
    });
    const collecting = (async () => {
      for await (const item of watch) items.push(item);
    })();
    await waitFor('the replayed history', () =>
      items.some((i) => i.event_type === 'job:completed' && i.job_id === before.job_id),
    );
    live.jobId = (await mare.generateTemplates(clientId)).job_id;
    const liveId = live.jobId;
    await waitFor('the live job to complete on the all-jobs stream', () =>
      items.some((i) => i.event_type === 'job:completed' && i.job_id === liveId),
    );
    watch.close();
    await collecting;

    const seqsOf = (jobId: string) =>
      items.flatMap((i) => (i.event_type !== 'stream:resync' && i.job_id === jobId ? [i.seq] : []));
    expectAllSeqs(seqsOf(before.job_id));
    expectAllSeqs(seqsOf(liveId));
    expect(statuses.filter((s) => s === 'open')).toHaveLength(2);
    expect(watch.lastEventId).toMatch(
      new RegExp(`^${liveId}:${String(seqsOf(liveId).at(-1))}:\\d+-\\d+$`),
    );
    await expect(watch.done).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('reports a resync when the event it would resume after is no longer in history', async () => {
    const resyncs: StreamResync[] = [];
    const watch = mare.watchAll({
      lastEventId: `${randomUUID()}:3`,
      onResync: (notice) => resyncs.push(notice),
    });
    const [first] = await (async () => {
      for await (const item of watch) return [item];
      return [];
    })();
    expect(first).toMatchObject({ event_type: 'stream:resync', reason: 'history_unavailable' });
    expect(resyncs).toHaveLength(1);
    expect(watch.closed).toBe(true);
  });
});
