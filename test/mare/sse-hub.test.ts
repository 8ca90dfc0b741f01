import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobEvent } from '../../src/contract/index.js';
import { AllJobsStream } from '../../src/mare/all-jobs-stream.js';
import { JobStream } from '../../src/mare/job-stream.js';
import { LiveEvent } from '../../src/mare/live-event.js';
import { SseHub } from '../../src/mare/sse-hub.js';
import { FakeResponse } from '../helpers/fake-response.js';
import { jobEvents } from '../helpers/job-events.js';
import { waitFor } from '../helpers/wait.js';

const live = (event: JobEvent) => new LiveEvent(event, JSON.stringify(event));
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const hubs: SseHub[] = [];
function hub(options?: ConstructorParameters<typeof SseHub>[0]) {
  const h = new SseHub(options);
  hubs.push(h);
  return h;
}
afterEach(() => {
  for (const h of hubs.splice(0)) h.close();
});

function watchJob(h: SseHub, jobId: string) {
  const res = new FakeResponse();
  const stream = new JobStream(res.asResponse(), h.batch, jobId, 0);
  void h.addJobStream(stream);
  stream.open({ kind: 'replay', events: [] }, 1000);
  return { res, stream };
}

function watchAll(h: SseHub) {
  const res = new FakeResponse();
  const stream = new AllJobsStream(res.asResponse(), h.batch);
  void h.addAllJobsStream(stream);
  stream.open([], 1000);
  return { res, stream };
}

describe('SseHub', () => {
  it("hands a job channel's event to that job's watchers only, and an all-jobs event to every all-jobs watcher only", async () => {
    const h = hub();
    const a = randomUUID();
    const b = randomUUID();
    const watcherA = watchJob(h, a);
    const watcherB = watchJob(h, b);
    const all = watchAll(h);
    h.broadcastJob(live(jobEvents.started(a, 1)));
    await nextTurn();
    expect(watcherA.res.text).toContain(`"job_id":"${a}"`);
    expect(watcherB.res.text).not.toContain('job_id');
    expect(all.res.text).not.toContain('job_id');
    h.broadcastAll(live({ ...jobEvents.queued(b, 1), stream_id: '1733-0' }));
    await nextTurn();
    expect(all.res.text).toContain(`id: ${b}:1:1733-0`);
    expect(watcherB.res.text).not.toContain('job_id');
  });

  it('an all-jobs stream drops a live event its replay already sent, however late it comes, until live events pass the replay', async () => {
    const h = hub();
    const job = randomUUID();
    const at = (seq: number) => ({ ...jobEvents.progress(job, seq, seq), stream_id: `100-${seq}` });
    const res = new FakeResponse();
    const stream = new AllJobsStream(res.asResponse(), h.batch);
    void h.addAllJobsStream(stream);
    stream.open(
      [1, 2].map((seq) => ({ event: at(seq), json: JSON.stringify(at(seq)) })),
      1000,
    );
    // Published before the replay was read, but arriving after it opened.
    h.broadcastAll(live(at(2)));
    h.broadcastAll(live(at(3)));
    // A job whose seq went back (its counter was lost) is still new once past the replay.
    h.broadcastAll(live({ ...jobEvents.queued(job, 1), stream_id: '100-4' }));
    await nextTurn();
    const ids = res.text.split('\n').filter((l) => l.startsWith('id: '));
    expect(ids).toEqual([
      `id: ${job}:1:100-1`,
      `id: ${job}:2:100-2`,
      `id: ${job}:3:100-3`,
      `id: ${job}:1:100-4`,
    ]);
  });

  it('watches a job while a stream here watches it, and every job while an all-jobs stream is open', () => {
    const calls: string[] = [];
    const h = hub({
      subscriptions: {
        watchJob: (id) => (calls.push(`watch ${id}`), Promise.resolve()),
        unwatchJob: (id) => void calls.push(`unwatch ${id}`),
        watchAll: () => (calls.push('watch all'), Promise.resolve()),
        unwatchAll: () => void calls.push('unwatch all'),
      },
    });
    const job = randomUUID();
    const one = watchJob(h, job);
    const two = watchJob(h, job);
    const all = watchAll(h);
    one.res.disconnect();
    one.stream.end();
    two.stream.end();
    all.res.disconnect();
    expect(calls).toEqual([
      `watch ${job}`,
      `watch ${job}`,
      'watch all',
      `unwatch ${job}`,
      `unwatch ${job}`,
      'unwatch all',
    ]);
  });

  it('counts connections by kind and forgets each one when it closes', () => {
    const counts: string[] = [];
    const h = hub({ onCountChange: (kind, n) => counts.push(`${kind}=${n}`) });
    const job = randomUUID();
    const one = watchJob(h, job);
    const two = watchJob(h, job);
    const all = watchAll(h);
    expect(h.size).toBe(3);
    expect(h.watchedJobIds()).toEqual([job]);
    one.res.disconnect();
    two.stream.end();
    all.res.disconnect();
    expect(h.size).toBe(0);
    expect(h.watchedJobIds()).toEqual([]);
    expect(counts).toEqual(['job=1', 'job=2', 'global=1', 'job=1', 'job=0', 'global=0']);
  });

  it('ends every stream with the given last words', async () => {
    const h = hub();
    const job = watchJob(h, randomUUID());
    const all = watchAll(h);
    h.closeAll('retry: 250\n\n');
    await nextTurn();
    for (const { res } of [job, all]) {
      expect(res.ended).toBe(true);
      expect(res.text.endsWith('retry: 250\n\n')).toBe(true);
    }
  });

  it('resyncs the watchers of one job', async () => {
    const h = hub();
    const job = randomUUID();
    const watcher = watchJob(h, job);
    h.resyncJob(
      job,
      {
        text: undefined,
        doc: {
          job_id: job,
          client_id: randomUUID(),
          status: 'failed',
          progress: null,
          template_ids: [],
          template_count: 0,
          generation_duration_ms: 3,
          error_message: 'no',
          completed_at: new Date().toISOString(),
        },
      },
      4,
    );
    await nextTurn();
    expect(watcher.res.text).toContain('"event_type":"job:snapshot"');
    expect(watcher.res.ended).toBe(true);
  });

  it('sends heartbeats to idle connections on its one timer', async () => {
    const h = hub({ heartbeatMs: 20 });
    const watcher = watchAll(h);
    await waitFor('a heartbeat', () => watcher.res.text.includes(': heartbeat'));
  });
});
