import { createKeyspace } from '../../src/contract/index.js';
import { serviceEnv, type BenchContext } from '../lib/bench-context.js';
import { jobIds } from '../lib/bench-events.js';
import { BenchPublisher } from '../lib/bench-publisher.js';
import { fmt, type ScenarioResult } from '../lib/bench-report.js';
import type { ServerSpec } from '../lib/server-child.js';
import { startServerProcess } from '../lib/server-process.js';
import { SseLoad } from '../lib/sse-load.js';

interface PerJobMeasure {
  opened: number;
  connectErrors: Record<string, number>;
  published: number;
  received: number;
  lost: number;
  duplicates: number;
  endedEarly: number;
  p50: number;
  p99: number;
  max: number;
  serverCpuMs: number;
}

async function measure(
  ctx: BenchContext,
  spec: ServerSpec,
  name: string,
  jobs: readonly string[],
  load: SseLoad,
  publisher: BenchPublisher,
): Promise<PerJobMeasure> {
  const { perJobRate, perJobSeconds } = ctx.options;
  const server = await startServerProcess(spec, name);
  try {
    ctx.log(`${name}: ${jobs.length} job subscribers`);
    const { opened, errors } = await load.open(
      server.url,
      jobs.map((id) => `/v1/triton/jobs/${id}/subscribe`),
    );
    // Warm-up, then forget it (and the history replayed on connect).
    const warm = await publisher.rated({ rate: perJobRate, seconds: 0.5, jobIds: jobs });
    await load.waitForDeliveries(warm.published, 2000);
    await load.reset();

    ctx.log(`${name}: ${perJobRate} events/s for ${perJobSeconds} s`);
    const cpu0 = await server.cpu();
    const run = await publisher.rated({ rate: perJobRate, seconds: perJobSeconds, jobIds: jobs });
    // Each event has exactly one subscriber (its job's).
    const r = await load.waitForDeliveries(run.published);
    const cpu1 = await server.cpu();
    return {
      opened,
      connectErrors: errors,
      published: run.published,
      received: r.received,
      lost: run.published - r.received,
      duplicates: r.duplicates,
      endedEarly: r.endedEarly,
      p50: r.latency.percentile(50),
      p99: r.latency.percentile(99),
      max: r.latency.max,
      serverCpuMs: cpu1.userMs + cpu1.systemMs - cpu0.userMs - cpu0.systemMs,
    };
  } finally {
    await load.closeAll();
    await server.stop();
  }
}

/**
 * 2. Per-job streams: one subscriber on `/v1/triton/jobs/{id}/subscribe` for each of many
 * jobs, events spread evenly over the jobs, against a bare relay that routes each message by
 * its `job_id` from one SUBSCRIBE.
 */
export async function runPerJob(ctx: BenchContext): Promise<ScenarioResult> {
  const { perJobJobs, perJobRate, perJobSeconds, connsPerProcess } = ctx.options;
  await ctx.admin.flushall();
  const jobs = jobIds(perJobJobs);
  const load = new SseLoad({ perProcess: connsPerProcess });
  const publisher = BenchPublisher.create(ctx.redisUrl);
  let project: PerJobMeasure;
  let bare: PerJobMeasure;
  try {
    // mare-api answers a job's stream from its history: give every job its `job:queued` first.
    await publisher.publishQueued(jobs);
    project = await measure(
      ctx,
      { kind: 'mare', env: serviceEnv(ctx) },
      'mare-api',
      jobs,
      load,
      publisher,
    );
    bare = await measure(
      ctx,
      {
        kind: 'bare-relay',
        redisUrl: ctx.redisUrl,
        channel: createKeyspace().allJobsChannel,
        route: 'by-job',
        heartbeatMs: ctx.options.heartbeatMs,
      },
      'bare relay',
      jobs,
      load,
      publisher,
    );
  } finally {
    await publisher.close();
    await load.stop();
  }
  const perK = (m: PerJobMeasure) => (m.serverCpuMs * 1000) / Math.max(1, m.received);
  return {
    scenario: 'per-job',
    title: 'Per-job streams: /v1/triton/jobs/{id}/subscribe vs bare relay routing by job_id',
    params: { jobs: perJobJobs, rate: perJobRate, seconds: perJobSeconds },
    rows: [
      { metric: 'connections open', unit: 'conns', project: project.opened, bare: bare.opened },
      {
        metric: 'events published',
        unit: 'events',
        project: project.published,
        bare: bare.published,
      },
      { metric: 'lost', unit: 'events', project: project.lost, bare: bare.lost },
      { metric: 'duplicates', unit: 'events', project: project.duplicates, bare: bare.duplicates },
      { metric: 'p50 publish→receipt', unit: 'ms', project: project.p50, bare: bare.p50 },
      { metric: 'p99 publish→receipt', unit: 'ms', project: project.p99, bare: bare.p99 },
      { metric: 'max publish→receipt', unit: 'ms', project: project.max, bare: bare.max },
      {
        metric: 'server CPU per 1k deliveries',
        unit: 'ms',
        project: perK(project),
        bare: perK(bare),
      },
    ],
    targets: [
      {
        target: 'per-job: 0 lost events',
        met: project.lost === 0 && project.opened === perJobJobs,
        figure: `${project.lost} lost of ${project.published}`,
      },
      {
        target: 'per-job: p99 ≤ bare + 2 ms',
        met: project.p99 <= bare.p99 + 2,
        figure: `${fmt(project.p99)} ms vs ${fmt(bare.p99)} ms (+${fmt(project.p99 - bare.p99)} ms)`,
      },
    ],
    details: { project, bare },
  };
}
