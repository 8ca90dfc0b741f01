import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEventStreamParser } from '../../src/client/read-event-stream.js';
import { decodeEvent, withStreamId, type JobEvent } from '../../src/contract/index.js';
import { LiveEvent } from '../../src/mare/live-event.js';
import { SseStream, SseWriteBatch, type SseStreamOptions } from '../../src/mare/sse-stream.js';
import { FakeResponse } from '../helpers/fake-response.js';
import { jobEvents } from '../helpers/job-events.js';

/** The smallest concrete stream: every event, with the job stream's frame (or the global one). */
class TestStream extends SseStream {
  global = false;
  open(first: string): void {
    this.openWith(first);
  }
  protected accept(): boolean {
    return true;
  }
  protected frameOf(live: LiveEvent): string {
    return this.global ? live.globalFrame : live.jobFrame;
  }
}

const live = (event: JobEvent) => new LiveEvent(event, JSON.stringify(event));
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function stream(options?: SseStreamOptions, onFlushed?: (events: readonly LiveEvent[]) => void) {
  const res = new FakeResponse();
  const s = new TestStream(res.asResponse(), new SseWriteBatch({ onFlushed }), options);
  return { res, s };
}

/** The `id:` of every event in the text, in order. */
const ids = (text: string) => [...text.matchAll(/^id: (.*)$/gm)].map((m) => m[1]);

/** The events in the text, as a client parses them. */
function received(text: string): JobEvent[] {
  const events: JobEvent[] = [];
  createEventStreamParser({ onEvent: (m) => events.push(JSON.parse(m.data) as JobEvent) }).feed(
    text,
  );
  return events;
}

/** A live event as the gateway gets it from the all-jobs channel: with its global `stream_id`. */
function published(event: JobEvent, streamId: string): LiveEvent {
  const json = withStreamId(JSON.stringify(event), streamId);
  return new LiveEvent(decodeEvent(json), json);
}

/** What an event says in a check: its seq and type, and for a delta its template and text. */
function summary(e: JobEvent): string {
  return e.event_type === 'job:delta'
    ? `${e.seq} delta ${e.template_index} ${JSON.stringify(e.delta)}`
    : `${e.seq} ${e.event_type}`;
}

/** Stalls the client and lets the stream notice: from now on events wait. */
async function congest(res: FakeResponse, s: TestStream, first: JobEvent): Promise<void> {
  s.deliver(live(first));
  res.stall();
  await nextTurn();
}

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
    const batch = new SseWriteBatch({
      onFlushed: (events) => flushed.push(events.map((e) => String(e.seq))),
    });
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

  it('sends mid-turn what a long turn gathered so far, and still reports each event once, after its last write', async () => {
    const job = randomUUID();
    const flushed: string[][] = [];
    const batch = new SseWriteBatch({
      onFlushed: (events) => flushed.push(events.map((e) => String(e.seq))),
      sendAfterMs: 0,
    });
    const responses = Array.from({ length: 1100 }, () => new FakeResponse());
    const streams = responses.map((res) => new TestStream(res.asResponse(), batch));
    for (const s of streams) s.open('');
    await nextTurn();
    const events = [jobEvents.started(job, 1), jobEvents.progress(job, 2, 1)].map(live);
    for (const e of events) for (const s of streams) s.deliver(e);
    // Still in the same turn: 2,200 writes, sent after the 1,024th and the 2,048th, so the
    // first connection has both events, the last only the first; the rest waits for the turn's end.
    expect(responses[0]?.flushes.map(ids)).toEqual([['1'], ['2']]);
    expect(ids(responses[1099]?.text ?? '')).toEqual(['1']);
    await nextTurn();
    for (const res of responses) expect(ids(res.text)).toEqual(['1', '2']);
    expect(flushed).toEqual([['1'], ['2']]);
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

  it('while the socket is congested, consecutive deltas of a template wait as one carrying their text joined, as of the last seq', async () => {
    const job = randomUUID();
    const { res, s } = stream({ highWaterBytes: 0 });
    s.open('');
    await congest(res, s, jobEvents.started(job, 1));
    const pieces = ['Dear ', '{{first_name}}', ',\n\n', 'we ', 'reduce'];
    pieces.forEach((text, i) => s.deliver(live(jobEvents.delta(job, i + 2, 0, text))));
    expect(s.pendingCount).toBe(1);
    expect(ids(res.text)).toEqual(['1']);

    res.drain();
    await nextTurn();
    const events = received(res.text);
    expect(events.map(summary)).toEqual([
      '1 job:started',
      `6 delta 0 ${JSON.stringify(pieces.join(''))}`,
    ]);
    expect(ids(res.text)).toEqual(['1', '6']);
  });

  it("never merges deltas of different templates, nor across another of the job's events", async () => {
    const job = randomUUID();
    const { res, s } = stream({ highWaterBytes: 0 });
    s.open('');
    await congest(res, s, jobEvents.started(job, 1));
    const waiting = [
      jobEvents.delta(job, 2, 0, 'a'),
      jobEvents.delta(job, 3, 0, 'b'),
      jobEvents.delta(job, 4, 1, 'c'),
      jobEvents.started(job, 5),
      jobEvents.delta(job, 6, 1, 'd'),
      jobEvents.progress(job, 7, 2),
      jobEvents.delta(job, 8, 1, 'e'),
      jobEvents.delta(job, 9, 2, 'f'),
      jobEvents.delta(job, 10, 2, 'g'),
    ];
    for (const e of waiting) s.deliver(live(e));
    res.drain();
    await nextTurn();
    expect(received(res.text).map(summary)).toEqual([
      '1 job:started',
      '3 delta 0 "ab"',
      '4 delta 1 "c"',
      '5 job:started',
      '6 delta 1 "d"',
      '7 job:progress',
      '8 delta 1 "e"',
      '10 delta 2 "fg"',
    ]);
  });

  it("merges a job's deltas across other jobs' events, each job's events staying in seq order", async () => {
    const a = randomUUID();
    const b = randomUUID();
    const { res, s } = stream({ highWaterBytes: 0 });
    s.open('');
    await congest(res, s, jobEvents.started(a, 1));
    s.deliver(live(jobEvents.delta(a, 2, 0, 'A1')));
    s.deliver(live(jobEvents.started(b, 1)));
    s.deliver(live(jobEvents.delta(a, 3, 0, 'A2')));
    s.deliver(live(jobEvents.delta(b, 2, 0, 'B1')));
    s.deliver(live(jobEvents.delta(a, 4, 0, 'A3')));
    s.deliver(live(jobEvents.delta(b, 3, 0, 'B2')));
    expect(s.pendingCount).toBe(3);
    res.drain();
    await nextTurn();
    const events = received(res.text);
    expect(events.filter((e) => e.job_id === a).map(summary)).toEqual([
      '1 job:started',
      '4 delta 0 "A1A2A3"',
    ]);
    expect(events.filter((e) => e.job_id === b).map(summary)).toEqual([
      '1 job:started',
      '3 delta 0 "B1B2"',
    ]);
  });

  it("sends a merged delta on a job's stream as its history has it (no stream_id), and on the all-jobs stream with the later event's stream_id", async () => {
    const job = randomUUID();
    const jobSide = stream({ highWaterBytes: 0 });
    const allSide = stream({ highWaterBytes: 0 });
    allSide.s.global = true;
    const first = published(jobEvents.started(job, 1), '1700000000000-0');
    const deltas = [
      published(jobEvents.delta(job, 2, 0, 'Hello'), '1700000000001-0'),
      published(jobEvents.delta(job, 3, 0, ', world'), '1700000000002-0'),
    ];
    for (const { res, s } of [jobSide, allSide]) {
      s.open('');
      s.deliver(first);
      res.stall();
      await nextTurn();
      for (const d of deltas) s.deliver(d);
      res.drain();
      await nextTurn();
    }

    const onJob = received(jobSide.res.text);
    expect(onJob.map(summary)).toEqual(['1 job:started', '3 delta 0 "Hello, world"']);
    expect(onJob.map((e) => e.stream_id)).toEqual([undefined, undefined]);
    expect(ids(jobSide.res.text)).toEqual(['1', '3']);

    const onAll = received(allSide.res.text);
    expect(onAll.map(summary)).toEqual(['1 job:started', '3 delta 0 "Hello, world"']);
    expect(onAll.map((e) => e.stream_id)).toEqual(['1700000000000-0', '1700000000002-0']);
    expect(ids(allSide.res.text)).toEqual([`${job}:1:1700000000000-0`, `${job}:3:1700000000002-0`]);
  });

  it('never drops or reorders text while congested: at every event a client receives, each template has exactly the text published up to its seq', async () => {
    const step = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ job: fc.nat(1), delta: fc.string({ minLength: 1, maxLength: 3 }) }),
      },
      { weight: 1, arbitrary: fc.record({ job: fc.nat(1), next: fc.constant(true) }) },
      { weight: 1, arbitrary: fc.record({ job: fc.nat(1), restart: fc.constant(true) }) },
      { weight: 1, arbitrary: fc.record({ drain: fc.constant(true) }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
        const jobs = [randomUUID(), randomUUID()];
        const { res, s } = stream({ highWaterBytes: 0 });
        s.open('');
        const sent: JobEvent[] = [];
        const seqs = [0, 0];
        const templates = [0, 0];
        const deliver = (event: JobEvent) => {
          sent.push(event);
          s.deliver(live(event));
        };
        for (const [j, jobId] of jobs.entries()) deliver(jobEvents.started(jobId, ++seqs[j]!));
        res.stall();
        await nextTurn();
        for (const st of steps) {
          if ('drain' in st) {
            res.drain();
            await nextTurn();
            res.stall();
            continue;
          }
          const jobId = jobs[st.job]!;
          if ('delta' in st) {
            deliver(jobEvents.delta(jobId, ++seqs[st.job]!, templates[st.job]!, st.delta));
          } else if ('next' in st) {
            deliver(jobEvents.progress(jobId, ++seqs[st.job]!, ++templates[st.job]!));
          } else {
            deliver(jobEvents.started(jobId, ++seqs[st.job]!));
          }
          await nextTurn();
        }
        res.drain();
        await nextTurn();

        const got = received(res.text);
        for (const jobId of jobs) {
          const mine = sent.filter((e) => e.job_id === jobId);
          const seen = got.filter((e) => e.job_id === jobId);
          expect(
            seen.map((e) => e.seq),
            'seq order',
          ).toEqual([...seen.map((e) => e.seq)].sort((x, y) => x - y));
          expect(seen.at(-1)?.seq, 'the last event arrives').toBe(mine.at(-1)?.seq);
          const textsUpTo = (events: JobEvent[], seq: number) => {
            const texts = new Map<number, string>();
            for (const e of events) {
              if (e.seq > seq || e.event_type !== 'job:delta') continue;
              texts.set(e.template_index, (texts.get(e.template_index) ?? '') + e.delta);
            }
            return texts;
          };
          for (const e of seen) {
            const original = mine.find((m) => m.seq === e.seq);
            expect(e.event_type).toBe(original?.event_type);
            if (e.event_type !== 'job:delta') expect(e).toEqual(original);
            expect(textsUpTo(seen, e.seq)).toEqual(textsUpTo(mine, e.seq));
          }
          for (const m of mine) {
            if (m.event_type === 'job:started') {
              expect(seen, 'lifecycle events all arrive').toContainEqual(m);
            }
          }
        }
      }),
      { numRuns: 200 },
    );
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
