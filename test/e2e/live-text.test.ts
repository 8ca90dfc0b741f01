import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKeyspace,
  type JobSnapshot,
  type Template,
  type TemplateList,
} from '../../src/contract/index.js';
import {
  expectWholeRun,
  seqRange,
  textsFromDeltas,
  withoutDeltas,
  type EventData as Event,
} from '../helpers/events.js';
import {
  startOpenAiTestServer,
  type OpenAiTestServer,
  type StreamAnswer,
} from '../helpers/openai-test-server.js';
import { openSse, payloads, type SseConnection } from '../helpers/sse-client.js';
import { StalledClient } from '../helpers/stalled-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The live-text contract, end to end (worker, Redis, gateway, SSE): the deltas of a template,
 * joined in seq order, are exactly its stored body, for every kind of watcher: one there from
 * the start, one that joins while a template is being written, one that resumes after a delta,
 * one whose job's history expired while the job ran (a snapshot, then deltas), and one too slow
 * to read every delta (its waiting deltas are merged, never dropped).
 */

const keyspace = createKeyspace();

type Delta = Event & { template_index: number; delta: string };
type Texts = Record<number, string>;

const isDelta = (e: Event): e is Delta => e.event_type === 'job:delta';

/** Each template's text joined from the deltas among `events`, by position. */
function joined(events: readonly Event[]): Texts {
  return Object.fromEntries(textsFromDeltas(events));
}

/** A job's stored templates, in order, as triton-api has them. */
async function storedTemplates(sys: TestSystem, jobId: string): Promise<Template[]> {
  const res = await http<TemplateList>('GET', `${sys.tritonUrl}/jobs/${jobId}/templates`);
  expect(res.status).toBe(200);
  return res.body.templates;
}

/** A job's stored bodies, by position. */
async function storedBodies(sys: TestSystem, jobId: string): Promise<Texts> {
  const templates = await storedTemplates(sys, jobId);
  return Object.fromEntries(templates.map((t) => [t.position, t.body]));
}

async function submit(sys: TestSystem, clientId: string): Promise<string> {
  const res = await http<{ job_id: string }>(
    'POST',
    `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  expect(res.status).toBe(202);
  return res.body.job_id;
}

const jobUrl = (sys: TestSystem, jobId: string) =>
  `${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`;

/** The last event a connection received, if any. */
const lastOf = (sse: SseConnection): Event | undefined => payloads<Event>(sse).at(-1);

/** Waits until `sse` has received a delta of template `index` and that template is not stored. */
function untilWriting(sse: SseConnection, index: number): Promise<Event> {
  return waitFor(`template ${index} being written`, () => {
    const last = lastOf(sse);
    return last !== undefined && isDelta(last) && last.template_index === index && last;
  });
}

/** Deletes a job's event history, as its TTL would. */
async function expireHistory(
  sys: TestSystem,
  jobId: string,
  { global = false }: { global?: boolean } = {},
): Promise<void> {
  const redis = new Redis(sys.redis.url);
  try {
    expect(await redis.del(keyspace.jobHistoryKey(jobId))).toBe(1);
    // The all-jobs stream resumes from the global history: trimmed, as its cap would.
    if (global) await redis.xtrim(keyspace.globalHistoryKey, 'MAXLEN', 0);
  } finally {
    redis.disconnect();
  }
}

/**
 * Checks a stream that opened with a `job:snapshot` of a running job: the snapshot carries the
 * finished templates with their stored bodies and the draft of the one being written, the
 * events after it continue from its seq, and its text plus the later deltas are the stored
 * bodies. Returns the snapshot.
 */
function expectSnapshotThenDeltas(events: Event[], bodies: Texts, templates: Template[]) {
  const snapshot = events[0] as unknown as JobSnapshot;
  expect(snapshot.event_type).toBe('job:snapshot');
  expect(snapshot.status).toBe('running');
  const finished = snapshot.templates ?? [];
  const done = finished.length;
  expect(finished.map((t) => t.template_index)).toEqual(seqRange(0, done - 1));
  expect(finished.map((t) => t.template_id)).toEqual(templates.slice(0, done).map((t) => t.id));
  expect(snapshot.template_ids).toEqual(finished.map((t) => t.template_id));
  expect(snapshot.template_count).toBe(done);
  const texts: Texts = Object.fromEntries(finished.map((t) => [t.template_index, t.body]));
  if (snapshot.draft) {
    expect(snapshot.draft.template_index).toBe(done);
    expect(snapshot.draft.template_kind).toBe(templates[done]?.kind);
    texts[done] = snapshot.draft.text;
  }
  const later = events.slice(1);
  expectWholeRun(later, { first: snapshot.seq + 1 });
  for (const e of later.filter(isDelta)) {
    expect(e.template_index).toBeGreaterThanOrEqual(done);
    texts[e.template_index] = (texts[e.template_index] ?? '') + e.delta;
  }
  expect(texts).toEqual(bodies);
  return snapshot;
}

describe('the text of a job the built-in generator writes', () => {
  let sys: TestSystem;
  let clientId: string;

  beforeAll(async () => {
    // 7 × 300 ms, each template typed out in ~10 ms pieces, published every 25 ms.
    sys = await startSystem({
      env: {
        GENERATION_STEP_MS: '300',
        DELTA_INTERVAL_MS: '25',
        SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
      },
    });
    clientId = await createClientWithProposition(sys.tritonUrl);
  });

  afterAll(async () => {
    await sys?.close();
  });

  it('reaches a watcher from the start as several deltas per template that join into its stored body', async () => {
    const jobId = await submit(sys, clientId);
    const sse = await openSse(jobUrl(sys, jobId));
    await sse.ended;
    const events = payloads<Event>(sse);
    expectWholeRun(events);
    const bodies = await storedBodies(sys, jobId);
    expect(Object.keys(bodies)).toHaveLength(7);
    expect(joined(events)).toEqual(bodies);
    // Written as it goes, not all at once: every template arrives in several pieces, each
    // before the template is stored.
    for (let index = 0; index < 7; index++) {
      const deltas = events.filter((e) => isDelta(e) && e.template_index === index);
      expect(deltas.length, `deltas of template ${index}`).toBeGreaterThan(1);
      const stored = events.findIndex(
        (e) => e.event_type === 'job:progress' && e.templates_done === index + 1,
      );
      expect(events.indexOf(deltas.at(-1)!)).toBeLessThan(stored);
    }
    expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
  });

  it('reaches a watcher that joins while a template is being written whole', async () => {
    const jobId = await submit(sys, clientId);
    const first = await openSse(jobUrl(sys, jobId));
    const writing = await untilWriting(first, 3);
    const joiner = await openSse(jobUrl(sys, jobId));
    await Promise.all([first.ended, joiner.ended]);
    // It opened while template 3 was being written: the job went on after that delta.
    expect(payloads<Event>(joiner).at(-1)!.seq).toBeGreaterThan(writing.seq);
    const bodies = await storedBodies(sys, jobId);
    const events = payloads<Event>(joiner);
    expectWholeRun(events);
    expect(joined(events)).toEqual(bodies);
    expect(payloads<Event>(joiner)).toEqual(payloads<Event>(first));
  });

  it('reaches a watcher resuming a finished job with Last-Event-ID after any delta: what it had and what it gets join into the stored bodies', async () => {
    const jobId = await submit(sys, clientId);
    const whole = await openSse(jobUrl(sys, jobId));
    await whole.ended;
    const events = payloads<Event>(whole);
    const bodies = await storedBodies(sys, jobId);
    const deltas = events.filter(isDelta);
    // The first delta, one in the middle of a template, the last of a template, the last one.
    const middle = deltas.filter((d) => d.template_index === 3);
    const lastOfTwo = deltas.filter((d) => d.template_index === 2).at(-1)!;
    const points = [deltas[0]!, middle[Math.floor(middle.length / 2)]!, lastOfTwo, deltas.at(-1)!];
    for (const point of points) {
      const resumed = await openSse(jobUrl(sys, jobId), { lastEventId: String(point.seq) });
      await resumed.ended;
      const got = payloads<Event>(resumed);
      expect(got[0]?.seq, `resumed after ${point.seq}`).toBe(point.seq + 1);
      const combined = [...events.filter((e) => e.seq <= point.seq), ...got];
      expectWholeRun(combined);
      expect(joined(combined)).toEqual(bodies);
    }
  });

  it('reaches a watcher that drops mid-template and resumes with Last-Event-ID while the job runs, nothing missed or repeated', async () => {
    const jobId = await submit(sys, clientId);
    const first = await openSse(jobUrl(sys, jobId));
    await untilWriting(first, 2);
    first.close();
    await first.ended;
    // Resume after the last delta it had; anything it read after that is dropped, as a client
    // that crashed right then would have it.
    const had = payloads<Event>(first);
    const point = had.filter(isDelta).at(-1)!;
    const before = had.filter((e) => e.seq <= point.seq);
    const resumed = await openSse(jobUrl(sys, jobId), { lastEventId: String(point.seq) });
    await resumed.ended;
    const after = payloads<Event>(resumed);
    // The job was still running: the resumed stream carried live deltas, not only history.
    expect(after.filter((e) => isDelta(e) && e.template_index === 6).length).toBeGreaterThan(0);
    const combined = [...before, ...after];
    expectWholeRun(combined);
    expect(joined(combined)).toEqual(await storedBodies(sys, jobId));
  });

  it('reaches a watcher whose job history expired mid-run as a snapshot (finished templates, draft) that later deltas continue into the stored bodies', async () => {
    const jobId = await submit(sys, clientId);
    const observer = await openSse(jobUrl(sys, jobId));
    await untilWriting(observer, 2);
    await expireHistory(sys, jobId);
    // A new watcher, and one that comes back with an id from before the expiry.
    const fresh = await openSse(jobUrl(sys, jobId));
    const returning = await openSse(jobUrl(sys, jobId), { lastEventId: '3' });
    await Promise.all([observer.ended, fresh.ended, returning.ended]);
    const templates = await storedTemplates(sys, jobId);
    const bodies = await storedBodies(sys, jobId);
    for (const sse of [fresh, returning]) {
      const snapshot = expectSnapshotThenDeltas(payloads<Event>(sse), bodies, templates);
      expect(snapshot.templates?.length).toBeGreaterThanOrEqual(2);
      expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
    }
  });

  it('tells an all-jobs watcher whose history was trimmed to resync; a job snapshot and the live deltas after it then join into the stored bodies', async () => {
    const everything = await openSse(`${sys.mareUrl}/v1/triton/events`);
    const jobId = await submit(sys, clientId);
    const observer = await openSse(jobUrl(sys, jobId));
    await untilWriting(observer, 2);
    const ofJob = (sse: SseConnection) =>
      sse.events.filter(
        (m) => m.event === 'message' && (JSON.parse(m.data) as Event).job_id === jobId,
      );
    const lastId = ofJob(everything).at(-1)?.id;
    expect(lastId).toMatch(new RegExp(`^${jobId}:\\d+:\\d+-\\d+$`));
    everything.close();
    await expireHistory(sys, jobId, { global: true });

    const resumed = await openSse(`${sys.mareUrl}/v1/triton/events`, { lastEventId: lastId });
    await resumed.waitForEvents(1);
    expect(resumed.events[0]?.event).toBe('resync');
    // What a client does on resync: it takes the job's state from its own stream, then applies
    // the live events newer than that state.
    const state = await openSse(jobUrl(sys, jobId));
    await Promise.all([observer.ended, state.ended]);
    await waitFor('the job’s end on the resynced stream', () =>
      ofJob(resumed).some((m) => (JSON.parse(m.data) as Event).event_type === 'job:completed'),
    );
    resumed.close();
    const [snapshot] = payloads<Event>(state) as unknown as [JobSnapshot];
    expect(snapshot.event_type).toBe('job:snapshot');
    const live = ofJob(resumed)
      .map((m) => JSON.parse(m.data) as Event)
      .filter((e) => e.seq > snapshot.seq);
    expectSnapshotThenDeltas(
      [snapshot as unknown as Event, ...live],
      await storedBodies(sys, jobId),
      await storedTemplates(sys, jobId),
    );
  });
});

/** A streamed answer carrying `text` in pieces of `size` characters (never half a character). */
function streamed(text: string, size: number, delayMs = 0): StreamAnswer {
  const chars = Array.from(text);
  const pieces: string[] = [];
  for (let i = 0; i < chars.length; i += size) pieces.push(chars.slice(i, i + size).join(''));
  return { type: 'stream', pieces, delayMs };
}

describe('the text of a job a language model writes (GENERATOR=openai)', () => {
  let model: OpenAiTestServer;
  let sys: TestSystem;
  let clientId: string;

  beforeAll(async () => {
    model = await startOpenAiTestServer();
    sys = await startSystem({
      env: {
        GENERATOR: 'openai',
        OPENAI_BASE_URL: model.url,
        OPENAI_MODEL: 'test-model',
        OPENAI_MAX_RETRIES: '0',
        JOB_ATTEMPTS: '1',
        DELTA_INTERVAL_MS: '20',
        SSE_HIGH_WATER_BYTES: '16384',
        SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
      },
    });
    clientId = await createClientWithProposition(sys.tritonUrl);
  });

  afterAll(async () => {
    await sys?.close();
    await model?.close();
  });

  it("reaches a watcher from the start as the model's text, its deltas joining into each stored body", async () => {
    const texts = Array.from(
      { length: 7 },
      (_, i) =>
        `Template ${i + 1} für {{company}} — naïve café, 東京, 🚀 launch.\n\n` +
        `Hi {{first_name}},\n\n${'We cut readmissions by 30%. '.repeat(6 + i)}\n\nBest,\n{{sender_name}}`,
    );
    // The first wrapped in a Markdown fence, the second in blank space: both are the model's
    // wrapping, not the template's text, and are stored without it.
    const answers = texts.map((t, i) =>
      streamed(i === 0 ? `\`\`\`markdown\n${t}\n\`\`\`\n` : i === 1 ? `\n\n  ${t}  \n` : t, 7, 2),
    );
    model.answer(...answers);
    const jobId = await submit(sys, clientId);
    const sse = await openSse(jobUrl(sys, jobId));
    await sse.ended;
    const events = payloads<Event>(sse);
    expectWholeRun(events);
    const bodies = await storedBodies(sys, jobId);
    expect(Object.values(bodies)).toEqual(texts);
    expect(joined(events)).toEqual(bodies);
    for (let index = 0; index < 7; index++) {
      const deltas = events.filter((e) => isDelta(e) && e.template_index === index);
      expect(deltas.length, `deltas of template ${index}`).toBeGreaterThan(1);
    }
  });

  it('reaches watchers whose history expired while the model writes slowly, with nothing published since and with newer events', async () => {
    const text = (i: number) => `Template ${i + 1}: ${'slowly written words, '.repeat(12)}end.`;
    // Template 3 comes in pieces 400 ms apart; the others at once.
    model.answer(
      ...Array.from({ length: 7 }, (_, i) =>
        i === 3 ? streamed(text(i), 80, 400) : streamed(text(i), 50),
      ),
    );
    const jobId = await submit(sys, clientId);
    const observer = await openSse(jobUrl(sys, jobId));
    const writing = await untilWriting(observer, 3);
    await expireHistory(sys, jobId);
    // Right away: history has nothing at all for this job.
    const atOnce = await openSse(jobUrl(sys, jobId));
    // After the next delta: history holds only what came after the expiry.
    await waitFor('a delta after the expiry', () => lastOf(observer)!.seq > writing.seq);
    const afterMore = await openSse(jobUrl(sys, jobId));
    await Promise.all([observer.ended, atOnce.ended, afterMore.ended]);
    const templates = await storedTemplates(sys, jobId);
    const bodies = await storedBodies(sys, jobId);
    for (const sse of [atOnce, afterMore]) {
      const snapshot = expectSnapshotThenDeltas(payloads<Event>(sse), bodies, templates);
      expect(snapshot.templates).toHaveLength(3);
      expect(snapshot.draft?.text.length).toBeGreaterThan(0);
    }
  });

  it('reaches a client that stops reading while deltas flow, once it reads again, with its waiting deltas merged: fewer events, the same text', async () => {
    // About 1 MB per template, in pieces a few milliseconds apart (so each template is several
    // deltas): far more than the socket buffers hold, so the gateway finds the stalled
    // connection congested while the text flows.
    const line = (i: number, n: number) =>
      `Line ${n} of template ${i + 1}: the quick brown fox jumps over the lazy dog, again.\n`;
    const big = (i: number) =>
      Array.from({ length: 12_000 }, (_, n) => line(i, n))
        .join('')
        .trimEnd();
    model.answer(...Array.from({ length: 7 }, (_, i) => streamed(big(i), 16_384, 3)));
    const jobId = await submit(sys, clientId);
    const stalled = new StalledClient(jobUrl(sys, jobId));
    await waitFor('the stalled client’s stream to open', () => stalled.text.includes('retry:'));
    stalled.pause();
    const healthy = await openSse(jobUrl(sys, jobId));
    await healthy.ended;
    const published = payloads<Event>(healthy);
    expectWholeRun(published);
    const bodies = await storedBodies(sys, jobId);
    expect(joined(published)).toEqual(bodies);
    expect(stalled.isClosed).toBe(false);

    stalled.resume();
    await stalled.closed;
    const got = stalled.events().map((m) => JSON.parse(m.data) as Event);
    // Nothing lost: every lifecycle event, in order, and the text whole.
    expect(withoutDeltas(got)).toEqual(withoutDeltas(published));
    const seqs = got.map((e) => e.seq);
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
    expect(joined(got)).toEqual(bodies);
    expect(stalled.comments().at(-1)).toBe('Connection closing - job completed');
    // Fewer deltas than were published: each one it got is the published deltas of its
    // template since the previous one it got, joined, as of the last of them.
    const gotDeltas = got.filter(isDelta);
    const publishedDeltas = published.filter(isDelta);
    expect(gotDeltas.length).toBeLessThan(publishedDeltas.length);
    const previous = new Map<number, number>();
    for (const d of gotDeltas) {
      const from = previous.get(d.template_index) ?? 0;
      const merged = publishedDeltas.filter(
        (p) => p.template_index === d.template_index && p.seq > from && p.seq <= d.seq,
      );
      expect(merged.at(-1)?.seq).toBe(d.seq);
      expect(d.delta).toBe(merged.map((p) => p.delta).join(''));
      previous.set(d.template_index, d.seq);
    }
    // A job's stream carries events as its history has them: no global stream position.
    expect(got.filter((e) => 'stream_id' in e).map((e) => e.seq)).toEqual([]);
  });
});
