import os from 'node:os';
import { createKeyspace } from '../../src/contract/index.js';
import { serviceEnv, type BenchContext } from '../lib/bench-context.js';
import { jobIds } from '../lib/bench-events.js';
import { BenchPublisher } from '../lib/bench-publisher.js';
import {
  fmt,
  ratioTarget,
  type ResultRow,
  type ScenarioResult,
  type TargetResult,
} from '../lib/bench-report.js';
import { digestKey, type TextDigest } from '../lib/delta-frames.js';
import { DeltaScript } from '../lib/delta-script.js';
import { medianOfRounds } from '../lib/rounds.js';
import type { ServerSpec } from '../lib/server-child.js';
import { startServerProcess } from '../lib/server-process.js';
import type { DeltaTexts } from '../lib/sse-client-child.js';
import { SseLoad } from '../lib/sse-load.js';

/** What one server did with the live text of many jobs. */
interface DeltaMeasure {
  opened: number;
  connectErrors: Record<string, number>;
  published: number;
  /** Deltas published per second, as achieved. */
  publishedPerSecond: number;
  /** Deltas to deliver: each one to its job's watchers and to every all-jobs watcher. */
  expected: number;
  /** Deltas delivered (a merged frame counts as every delta it carries). */
  received: number;
  lost: number;
  frames: number;
  merged: number;
  duplicates: number;
  endedEarly: number;
  /** Templates published in the measured phase. */
  templates: number;
  /** Pairs of (watcher, template) whose joined text is not what was published. */
  textsWrong: number;
  /** Bytes of published text missing from the watchers' texts. */
  textBytesMissing: number;
  p50: number;
  p99: number;
  max: number;
  deliveredPerSecond: number;
  bytesPerDelta: number;
  serverCpuMs: number;
  /** Server CPU per delivered delta, µs. */
  cpuPerDeltaUs: number;
}

/** Losses, duplicates, dropped streams and wrong texts keep the worst round's count. */
const ROUND_FIELDS = {
  worst: new Set(['lost', 'duplicates', 'endedEarly', 'textsWrong', 'textBytesMissing']),
  first: new Set(['connectErrors']),
};

/** Mean characters of a delta (20–60). */
const MEAN_DELTA_CHARS = 40;
/** Templates a job writes in the measured phase (the first one is the warm-up's). */
const MEASURED_TEMPLATES = 6;

/**
 * Compares every watcher's text of every template with what was published: each template goes
 * to `watchers` connections (its job's and every all-jobs one), and each must have joined it
 * exactly.
 */
function checkTexts(
  expected: ReadonlyMap<string, TextDigest>,
  received: DeltaTexts,
  watchers: number,
): { wrong: number; bytesMissing: number } {
  let wrong = 0;
  let bytesMissing = 0;
  for (const [template, digest] of expected) {
    const want = digestKey(digest);
    let seen = 0;
    for (const [got, n] of Object.entries(received[template] ?? {})) {
      seen += n;
      if (got === want) continue;
      wrong += n;
      bytesMissing += n * Math.max(0, digest.length - Number(got.split(':')[0]));
    }
    const absent = Math.max(0, watchers - seen);
    wrong += absent;
    bytesMissing += absent * digest.length;
  }
  return { wrong, bytesMissing };
}

async function measure(
  ctx: BenchContext,
  spec: ServerSpec,
  name: string,
  load: SseLoad,
  publisher: BenchPublisher,
): Promise<DeltaMeasure> {
  const { deltaJobs, deltaRate, deltaSeconds, deltaWatchers, deltaAllWatchers } = ctx.options;
  // Fresh jobs for each server, so that neither replays the other's history on connect.
  await ctx.admin.flushall();
  const jobs = jobIds(deltaJobs);
  await publisher.publishQueued(jobs);
  const paths = [
    ...jobs.flatMap((id) => Array<string>(deltaWatchers).fill(`/v1/triton/jobs/${id}/subscribe`)),
    ...Array<string>(deltaAllWatchers).fill('/v1/triton/events'),
  ];
  const watchersPerDelta = deltaWatchers + deltaAllWatchers;
  const rate = deltaJobs * deltaRate;
  // The same seed on both sides: the same sizes in the same order.
  const script = new DeltaScript({ seed: 1 });
  const draftOf = script.draft.bind(script);
  const server = await startServerProcess(spec, name);
  try {
    ctx.log(`${name}: ${paths.length} SSE watchers of ${deltaJobs} jobs`);
    const { opened, errors } = await load.open(server.url, paths, 'delta');

    // Warm-up on each job's first template, then forget it (and the history replayed on connect).
    await load.reset();
    const warm = await publisher.rated({ rate, seconds: 0.5, jobIds: jobs, draftOf });
    await load.waitForDeliveries(warm.published * watchersPerDelta, 2000);
    await load.reset();
    script.nextPhase((deltaRate * deltaSeconds * MEAN_DELTA_CHARS) / MEASURED_TEMPLATES);

    ctx.log(`${name}: ${deltaRate} deltas/s on each of ${deltaJobs} jobs for ${deltaSeconds} s`);
    const cpu0 = await server.cpu();
    const run = await publisher.rated({ rate, seconds: deltaSeconds, jobIds: jobs, draftOf });
    const expected = run.published * watchersPerDelta;
    const r = await load.waitForDeliveries(expected);
    const cpu1 = await server.cpu();
    const texts = checkTexts(script.expectedTexts(), await load.texts(), watchersPerDelta);
    const serverCpuMs = cpu1.userMs + cpu1.systemMs - cpu0.userMs - cpu0.systemMs;
    return {
      opened,
      connectErrors: errors,
      published: run.published,
      publishedPerSecond: run.published / Math.max(1e-3, (run.endMs - run.startMs) / 1000),
      expected,
      received: r.received,
      lost: expected - r.received,
      frames: r.frames,
      merged: r.merged,
      duplicates: r.duplicates,
      endedEarly: r.endedEarly,
      templates: script.expectedTexts().size,
      textsWrong: texts.wrong,
      textBytesMissing: texts.bytesMissing,
      p50: r.latency.percentile(50),
      p99: r.latency.percentile(99),
      max: r.latency.max,
      deliveredPerSecond: r.received / Math.max(1e-3, (r.lastReceiptMs - run.startMs) / 1000),
      bytesPerDelta: r.bytes / Math.max(1, r.received),
      serverCpuMs,
      cpuPerDeltaUs: (serverCpuMs * 1000) / Math.max(1, r.received),
    };
  } finally {
    await load.closeAll();
    await server.stop();
  }
}

/**
 * Live text: many jobs stream `job:delta` events (20–60 characters, each job moving through its
 * templates) through the project's EventPublisher to watchers of each job and of all jobs, on
 * mare-api and on a bare relay that routes each message to its job's watchers and to every
 * all-jobs watcher. Every watcher's text of every template must be exactly what was published
 * (merged deltas allowed).
 */
export async function runDeltas(ctx: BenchContext): Promise<ScenarioResult> {
  const { deltaJobs, deltaRate, deltaSeconds, deltaWatchers, deltaAllWatchers, deltaRounds } =
    ctx.options;
  const connections = deltaJobs * deltaWatchers + deltaAllWatchers;
  // An all-jobs watcher reads every delta: spread the clients over the cores.
  const perProcess = Math.min(
    ctx.options.connsPerProcess,
    Math.ceil(connections / Math.min(4, os.availableParallelism())),
  );
  const load = new SseLoad({ perProcess });
  const publisher = BenchPublisher.create(ctx.redisUrl);
  const projectRounds: DeltaMeasure[] = [];
  const bareRounds: DeltaMeasure[] = [];
  try {
    for (let round = 0; round < deltaRounds; round++) {
      ctx.log(`deltas: round ${round + 1}/${deltaRounds}`);
      const runProject = async () =>
        projectRounds.push(
          await measure(ctx, { kind: 'mare', env: serviceEnv(ctx) }, 'mare-api', load, publisher),
        );
      const runBare = async () =>
        bareRounds.push(
          await measure(
            ctx,
            {
              kind: 'bare-relay',
              redisUrl: ctx.redisUrl,
              channel: createKeyspace().allJobsChannel,
              route: 'both',
              heartbeatMs: ctx.options.heartbeatMs,
            },
            'bare relay',
            load,
            publisher,
          ),
        );
      // Rounds alternate which server goes first.
      if (round % 2 === 0) {
        await runProject();
        await runBare();
      } else {
        await runBare();
        await runProject();
      }
    }
  } finally {
    await publisher.close();
    await load.stop();
  }
  const project = medianOfRounds(projectRounds, ROUND_FIELDS);
  const bare = medianOfRounds(bareRounds, ROUND_FIELDS);
  const rows: ResultRow[] = [
    { metric: 'connections open', unit: 'conns', project: project.opened, bare: bare.opened },
    {
      metric: 'deltas published',
      unit: 'events',
      project: project.published,
      bare: bare.published,
    },
    {
      metric: 'deltas published/s',
      unit: '/s',
      project: project.publishedPerSecond,
      bare: bare.publishedPerSecond,
    },
    { metric: 'deltas to deliver', unit: 'events', project: project.expected, bare: bare.expected },
    { metric: 'deltas not delivered', unit: 'events', project: project.lost, bare: bare.lost },
    { metric: 'frames delivered', unit: 'frames', project: project.frames, bare: bare.frames },
    {
      metric: 'frames of merged deltas',
      unit: 'frames',
      project: project.merged,
      bare: bare.merged,
    },
    { metric: 'duplicates', unit: 'events', project: project.duplicates, bare: bare.duplicates },
    {
      metric: 'streams ended early',
      unit: 'conns',
      project: project.endedEarly,
      bare: bare.endedEarly,
    },
    {
      metric: `watcher texts wrong (of ${fmt(project.templates * (deltaWatchers + deltaAllWatchers))})`,
      unit: 'texts',
      project: project.textsWrong,
      bare: bare.textsWrong,
    },
    {
      metric: 'text missing',
      unit: 'bytes',
      project: project.textBytesMissing,
      bare: bare.textBytesMissing,
    },
    { metric: 'p50 publish→receipt', unit: 'ms', project: project.p50, bare: bare.p50 },
    { metric: 'p99 publish→receipt', unit: 'ms', project: project.p99, bare: bare.p99 },
    { metric: 'max publish→receipt', unit: 'ms', project: project.max, bare: bare.max },
    {
      metric: 'deltas delivered/s',
      unit: '/s',
      project: project.deliveredPerSecond,
      bare: bare.deliveredPerSecond,
    },
    {
      metric: 'wire bytes per delivered delta',
      unit: 'B',
      project: project.bytesPerDelta,
      bare: bare.bytesPerDelta,
    },
    {
      metric: 'server CPU per delivered delta',
      unit: 'µs',
      project: project.cpuPerDeltaUs,
      bare: bare.cpuPerDeltaUs,
    },
  ];
  const notOpened = connections - project.opened;
  const targets: TargetResult[] = [
    {
      target: 'deltas: 0 text lost',
      met: project.textsWrong === 0 && project.textBytesMissing === 0 && notOpened === 0,
      figure: `${project.textsWrong} wrong texts, ${project.textBytesMissing} bytes missing, ${project.lost} of ${project.expected} deltas not delivered${notOpened ? `, ${notOpened} connections failed` : ''}`,
    },
    ratioTarget('deltas: p99 ≤ 1.2× bare relay', project.p99, bare.p99, 1.2, 'atMost', ' ms'),
    ratioTarget(
      'deltas: CPU per delta ≤ 1.3× bare relay',
      project.cpuPerDeltaUs,
      bare.cpuPerDeltaUs,
      1.3,
      'atMost',
      ' µs',
    ),
  ];
  return {
    scenario: 'deltas',
    title: 'Live text: job:delta to per-job and all-jobs watchers vs bare relay',
    params: {
      jobs: deltaJobs,
      rate: `${deltaRate}/s per job`,
      seconds: deltaSeconds,
      watchers: `${deltaWatchers} per job + ${deltaAllWatchers} all-jobs`,
      rounds: deltaRounds,
    },
    rows,
    targets,
    notes: [
      'a delta counts as delivered once per watcher (its job’s and every all-jobs one); a merged frame counts as every delta it carries',
      'text: each watcher’s deltas of each template, joined, against what was published (a digest of the escaped text)',
      'latency: one sample per frame, from the publish of its (last) delta; clients share the cores with the server',
    ],
    details: { project, bare, rounds: { project: projectRounds, bare: bareRounds } },
  };
}
