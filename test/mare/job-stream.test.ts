import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { JobEvent, JobStatusDocument } from '../../src/contract/index.js';
import { AllJobsStream } from '../../src/mare/all-jobs-stream.js';
import { JobStream } from '../../src/mare/job-stream.js';
import { LiveEvent } from '../../src/mare/live-event.js';
import { SseWriteBatch } from '../../src/mare/sse-stream.js';
import { FakeResponse } from '../helpers/fake-response.js';
import { jobEvents } from '../helpers/job-events.js';

const stored = (event: JobEvent) => ({ event, json: JSON.stringify(event) });
const live = (event: JobEvent) => new LiveEvent(event, JSON.stringify(event));
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const ids = (text: string) => [...text.matchAll(/^id: (.*)$/gm)].map((m) => m[1]);

function jobStream(jobId: string, afterSeq = 0) {
  const res = new FakeResponse();
  return { res, stream: new JobStream(res.asResponse(), new SseWriteBatch(), jobId, afterSeq) };
}

function doc(jobId: string, status: JobStatusDocument['status']): JobStatusDocument {
  return {
    job_id: jobId,
    client_id: randomUUID(),
    status,
    progress: status === 'completed' ? 100 : 40,
    template_ids: [],
    template_count: 0,
    generation_duration_ms: status === 'completed' ? 10 : null,
    error_message: null,
    completed_at: status === 'completed' ? new Date().toISOString() : null,
  };
}

describe('JobStream', () => {
  it('replays history, then the live events that raced it, each once and in seq order', async () => {
    const job = randomUUID();
    const { res, stream } = jobStream(job);
    // Published while history was being read: 2 is in the replay too, 3 is not.
    stream.deliver(live(jobEvents.started(job, 2)));
    stream.deliver(live(jobEvents.progress(job, 3, 1)));
    stream.open(
      {
        kind: 'replay',
        events: [stored(jobEvents.queued(job, 1)), stored(jobEvents.started(job, 2))],
      },
      1000,
    );
    stream.deliver(live(jobEvents.progress(job, 3, 1)));
    await nextTurn();
    expect(res.text.startsWith('retry: 1000\n\n')).toBe(true);
    expect(ids(res.text)).toEqual(['1', '2', '3']);
    expect(res.ended).toBe(false);
  });

  it('skips what the client already has (Last-Event-ID)', async () => {
    const job = randomUUID();
    const { res, stream } = jobStream(job, 2);
    stream.open(
      {
        kind: 'replay',
        events: [stored(jobEvents.started(job, 2)), stored(jobEvents.progress(job, 3, 1))],
      },
      1000,
    );
    await nextTurn();
    expect(ids(res.text)).toEqual(['3']);
  });

  it('ends with the closing comment after a terminal event in the replay', async () => {
    const job = randomUUID();
    const { res, stream } = jobStream(job);
    stream.open(
      {
        kind: 'replay',
        events: [stored(jobEvents.queued(job, 1)), stored(jobEvents.completed(job, 2))],
      },
      1000,
    );
    stream.deliver(live(jobEvents.completed(job, 2)));
    await nextTurn();
    expect(ids(res.text)).toEqual(['1', '2']);
    expect(res.text.endsWith(': Connection closing - job completed\n\n')).toBe(true);
    expect(res.ended).toBe(true);
  });

  it('ends with the closing comment after a live terminal event', async () => {
    const job = randomUUID();
    const { res, stream } = jobStream(job);
    stream.open({ kind: 'replay', events: [] }, 1000);
    stream.deliver(live(jobEvents.completed(job, 1)));
    stream.deliver(live(jobEvents.completed(job, 2)));
    await nextTurn();
    expect(ids(res.text)).toEqual(['1']);
    expect(res.text.endsWith(': Connection closing - job completed\n\n')).toBe(true);
  });

  it("opens with a snapshot when history cannot be replayed, continues after the snapshot's seq, and ends if the job is finished", async () => {
    const job = randomUUID();
    const running = jobStream(job, 40);
    running.stream.open(
      { kind: 'snapshot', state: { doc: doc(job, 'running'), text: undefined }, seq: 5 },
      1000,
    );
    running.stream.deliver(live(jobEvents.progress(job, 6, 3)));
    await nextTurn();
    expect(ids(running.res.text)).toEqual(['5', '6']);
    expect(running.res.text).toContain('"event_type":"job:snapshot"');

    const finished = jobStream(job);
    finished.stream.open(
      { kind: 'snapshot', state: { doc: doc(job, 'completed'), text: undefined }, seq: 9 },
      1000,
    );
    await nextTurn();
    expect(finished.res.ended).toBe(true);
    expect(finished.res.text.endsWith(': Connection closing - job completed\n\n')).toBe(true);
  });

  it('opens with the snapshot of a job that finished while it was being made, and nothing after it', async () => {
    const job = randomUUID();
    const { res, stream } = jobStream(job);
    // History was read at seq 9; the job ended before the snapshot was made, and its last
    // events arrived meanwhile. The snapshot already says all of it.
    stream.deliver(live(jobEvents.progress(job, 10, 7)));
    stream.deliver(live(jobEvents.completed(job, 11)));
    stream.open(
      { kind: 'snapshot', state: { doc: doc(job, 'completed'), text: undefined }, seq: 9 },
      1000,
    );
    await nextTurn();
    expect(res.text.startsWith('retry: 1000\n\n')).toBe(true);
    expect(ids(res.text)).toEqual(['9']);
    expect(res.text).toContain('"event_type":"job:snapshot"');
    expect(res.text.endsWith(': Connection closing - job completed\n\n')).toBe(true);
    expect(res.ended).toBe(true);
  });

  it('resyncs an open stream with a snapshot, ending it when the job is finished', async () => {
    const job = randomUUID();
    const { res, stream } = jobStream(job);
    stream.open({ kind: 'replay', events: [stored(jobEvents.queued(job, 1))] }, 1000);
    stream.resync({ doc: doc(job, 'completed'), text: undefined }, 8);
    await nextTurn();
    expect(ids(res.text)).toEqual(['1', '8']);
    expect(res.ended).toBe(true);
  });
});

describe('AllJobsStream', () => {
  it('replays, then sends live events of every job not already replayed, with {job_id}:{seq} ids', async () => {
    const a = randomUUID();
    const b = randomUUID();
    const res = new FakeResponse();
    const stream = new AllJobsStream(res.asResponse(), new SseWriteBatch());
    stream.deliver(live(jobEvents.started(a, 2)));
    stream.deliver(live(jobEvents.queued(b, 1)));
    stream.open([stored(jobEvents.queued(a, 1)), stored(jobEvents.started(a, 2))], 500);
    stream.deliver(live(jobEvents.started(b, 2)));
    await nextTurn();
    expect(ids(res.text)).toEqual([`${a}:1`, `${a}:2`, `${b}:1`, `${b}:2`]);
  });

  it('says resync when what the client missed is no longer in history', async () => {
    const res = new FakeResponse();
    const stream = new AllJobsStream(res.asResponse(), new SseWriteBatch());
    stream.open(undefined, 500);
    await nextTurn();
    expect(res.text).toMatch(
      /^retry: 500\n\nid: \nevent: resync\ndata: \{"event_type":"stream:resync"/,
    );
  });
});
