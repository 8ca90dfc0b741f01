import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { JobEvent } from '../../src/contract/index.js';
import { LiveEvent } from '../../src/mare/live-event.js';
import { SseStream, SseWriteBatch, type SseStreamOptions } from '../../src/mare/sse-stream.js';
import { FakeResponse } from '../helpers/fake-response.js';
import { jobEvents } from '../helpers/job-events.js';

/** The smallest concrete stream: every event, with the job stream's frame. */
class TestStream extends SseStream {
  open(first: string): void {
    this.openWith(first);
  }
  protected accept(): boolean {
    return true;
  }
  protected frameOf(live: LiveEvent): string {
    return live.jobFrame;
  }
}

const live = (event: JobEvent) => new LiveEvent(event, JSON.stringify(event));
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function stream(options?: SseStreamOptions, onFlushed?: (events: readonly LiveEvent[]) => void) {
  const res = new FakeResponse();
  const s = new TestStream(res.asResponse(), new SseWriteBatch(onFlushed), options);
  return { res, s };
}

/** The `id:` of every event in the text, in order. */
const ids = (text: string) => [...text.matchAll(/^id: (.*)$/gm)].map((m) => m[1]);

describe('SseStream', () => {
  it('holds live events until it opens, then writes the opening and them in one system call', async () => {
    const job = randomUUID();
    const { res, s } = stream();
    s.deliver(live(jobEvents.queued(job, 1)));
    s.deliver(live(jobEvents.started(job, 2)));
    expect(res.flushes).toEqual([]);
    s.open('retry: 10\n\n');
    await nextTurn();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(res.flushes).toHaveLength(1);
    expect(res.text.startsWith('retry: 10\n\n')).toBe(true);
    expect(ids(res.text)).toEqual(['1', '2']);
  });

  it("gathers one turn's events into one system call, and reports each written event once", async () => {
    const job = randomUUID();
    const flushed: string[][] = [];
    const batch = new SseWriteBatch((events) => flushed.push(events.map((e) => String(e.seq))));
    const a = new FakeResponse();
    const b = new FakeResponse();
    const streams = [a, b].map((res) => new TestStream(res.asResponse(), batch));
    for (const s of streams) s.open('');
    const events = [jobEvents.started(job, 1), jobEvents.progress(job, 2, 1)].map(live);
    for (const e of events) for (const s of streams) s.deliver(e);
    await nextTurn();
    expect(a.flushes).toHaveLength(1);
    expect(b.flushes).toHaveLength(1);
    expect(ids(a.text)).toEqual(['1', '2']);
    expect(flushed).toEqual([['1', '2']]);
  });

  it('while the socket is congested, keeps only the latest of consecutive progress and every lifecycle event', async () => {
    const job = randomUUID();
    const { res, s } = stream({ highWaterBytes: 0 });
    s.open('');
    s.deliver(live(jobEvents.started(job, 1)));
    res.stall();
    await nextTurn();
    for (let seq = 2; seq <= 6; seq++) s.deliver(live(jobEvents.progress(job, seq, seq - 1)));
    s.deliver(live(jobEvents.completed(job, 7)));
    expect(s.pendingCount).toBe(2);
    expect(ids(res.text)).toEqual(['1']);
    res.drain();
    await nextTurn();
    expect(ids(res.text)).toEqual(['1', '6', '7']);
  });

  it("while the socket is congested, joins a template's consecutive deltas into one, as of the later seq", async () => {
    const job = randomUUID();
    const { res, s } = stream({ highWaterBytes: 0 });
    s.open('');
    s.deliver(live(jobEvents.started(job, 1)));
    res.stall();
    await nextTurn();
    const first = ['Dear "Dana",\n', 'the close — ', 'runs itself.'];
    const second = ['## Hero\n', 'Close in days.'];
    first.forEach((text, i) => s.deliver(live(jobEvents.delta(job, 2 + i, 0, text))));
    second.forEach((text, i) => s.deliver(live(jobEvents.delta(job, 5 + i, 1, text))));
    expect(s.pendingCount).toBe(2);
    res.drain();
    await nextTurn();
    expect(ids(res.text)).toEqual(['1', '4', '6']);
    const deltas = [...res.text.matchAll(/^data: (.*)$/gm)]
      .map((m) => JSON.parse(m[1] ?? '') as JobEvent)
      .filter((e) => e.event_type === 'job:delta')
      .map((e) => [e.seq, e.template_index, e.delta]);
    expect(deltas).toEqual([
      [4, 0, first.join('')],
      [6, 1, second.join('')],
    ]);
  });

  it("never merges a job's progress across another of its events, so seq order holds", async () => {
    const job = randomUUID();
    const other = randomUUID();
    const { res, s } = stream({ highWaterBytes: 0 });
    s.open('');
    s.deliver(live(jobEvents.started(job, 1)));
    res.stall();
    await nextTurn();
    s.deliver(live(jobEvents.progress(job, 2, 1)));
    s.deliver(live(jobEvents.progress(other, 5, 1)));
    s.deliver(live(jobEvents.progress(job, 3, 2)));
    s.deliver(live(jobEvents.started(job, 4)));
    s.deliver(live(jobEvents.progress(job, 5, 1)));
    res.drain();
    await nextTurn();
    const seqsOfJob = [...res.text.matchAll(/"job_id":"([^"]+)"[^\n]*"seq":(\d+)/g)]
      .filter((m) => m[1] === job)
      .map((m) => Number(m[2]));
    expect(seqsOfJob).toEqual([1, 3, 4, 5]);
  });

  it('is cut, and says so, once more events wait than it may hold', async () => {
    const job = randomUUID();
    let slow = 0;
    const { res, s } = stream({
      highWaterBytes: 0,
      maxPendingEvents: 3,
      onSlowConsumer: () => slow++,
    });
    let closedWith: SseStream | undefined;
    s.onClose = (x) => (closedWith = x);
    s.open('');
    s.deliver(live(jobEvents.queued(job, 1)));
    res.stall();
    await nextTurn();
    for (let seq = 2; seq <= 5; seq++) s.deliver(live(jobEvents.started(job, seq)));
    expect(slow).toBe(1);
    expect(res.destroyed).toBe(true);
    expect(s.closed).toBe(true);
    expect(closedWith).toBe(s);
  });

  it('sends a heartbeat only to an open, idle, uncongested connection', async () => {
    const job = randomUUID();
    const { res, s } = stream({ highWaterBytes: 0 });
    s.heartbeat();
    expect(res.flushes).toEqual([]);
    s.open('');
    s.heartbeat();
    await nextTurn();
    expect(res.text).toBe(': heartbeat\n\n');
    s.deliver(live(jobEvents.started(job, 1)));
    await nextTurn();
    s.heartbeat(); // data went by since the last beat: nothing to add
    await nextTurn();
    expect(res.text.match(/heartbeat/g)).toHaveLength(1);
    res.stall();
    s.deliver(live(jobEvents.progress(job, 2, 1)));
    await nextTurn();
    s.heartbeat();
    s.heartbeat();
    await nextTurn();
    expect(res.text.match(/heartbeat/g)).toHaveLength(1);
  });

  it('stops writing once the client is gone, and reports the close once', async () => {
    const job = randomUUID();
    const { res, s } = stream();
    let closes = 0;
    s.onClose = () => closes++;
    s.open('');
    res.disconnect();
    s.deliver(live(jobEvents.started(job, 1)));
    s.end('bye');
    await nextTurn();
    expect(res.text).toBe('');
    expect(closes).toBe(1);
  });
});
