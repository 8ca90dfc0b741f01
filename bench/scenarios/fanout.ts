import { createKeyspace } from '../../src/contract/index.js';
import type { BenchContext } from '../lib/bench-context.js';
import { serviceEnv } from '../lib/bench-context.js';
import { jobIds } from '../lib/bench-events.js';
import { BenchPublisher } from '../lib/bench-publisher.js';
import {
  ratioTarget,
  type ResultRow,
  type ScenarioResult,
  type TargetResult,
} from '../lib/bench-report.js';
import { openAndMeasure, SMALL_N_RSS_NOTE } from '../lib/connection-memory.js';
import { medianOfRounds } from '../lib/rounds.js';
import type { ServerSpec } from '../lib/server-child.js';
import { startServerProcess } from '../lib/server-process.js';
import { SseLoad } from '../lib/sse-load.js';

/** What one server did with N clients. */
interface FanoutMeasure {
  opened: number;
  connectErrors: Record<string, number>;
  rssPerConnection: number;
  heapPerConnection: number;
  rated: {
    published: number;
    expected: number;
    received: number;
    lost: number;
    duplicates: number;
    p50: number;
    p99: number;
    max: number;
    deliveriesPerSecond: number;
    serverCpuMs: number;
  };
  burst: {
    published: number;
    expected: number;
    received: number;
    lost: number;
    publishSeconds: number;
    deliverySeconds: number;
    deliveriesPerSecond: number;
    p99: number;
    serverCpuMs: number;
  };
  endedEarly: number;
}

const PATH = '/v1/triton/events';

/** Losses, duplicates and dropped streams keep the worst round's count. */
const ROUND_FIELDS = {
  worst: new Set(['lost', 'duplicates', 'endedEarly']),
  first: new Set(['connectErrors']),
};

async function measure(
  ctx: BenchContext,
  spec: ServerSpec,
  name: string,
  clients: number,
  load: SseLoad,
  publisher: BenchPublisher,
): Promise<FanoutMeasure> {
  const { fanoutRate, fanoutSeconds, fanoutBurst } = ctx.options;
  const jobs = jobIds(10);
  const server = await startServerProcess(spec, name);
  try {
    ctx.log(`${name}: opening ${clients} SSE connections`);
    const memory = await openAndMeasure(server, load, Array<string>(clients).fill(PATH));
    const opened = memory.opened;

    // Warm-up: the first events through a fresh process pay for compilation.
    await load.reset();
    const warm = await publisher.rated({ rate: 20, seconds: 0.5, jobIds: jobs });
    await load.waitForDeliveries(warm.published * opened, 2000);

    ctx.log(`${name}: ${fanoutRate} events/s for ${fanoutSeconds} s`);
    await load.reset();
    const cpu0 = await server.cpu();
    const rated = await publisher.rated({ rate: fanoutRate, seconds: fanoutSeconds, jobIds: jobs });
    const ratedExpected = rated.published * opened;
    const r = await load.waitForDeliveries(ratedExpected);
    const cpu1 = await server.cpu();

    ctx.log(`${name}: burst of ${fanoutBurst} events`);
    await load.reset();
    const burst = await publisher.burst({ count: fanoutBurst, jobIds: jobs });
    const burstExpected = burst.published * opened;
    const b = await load.waitForDeliveries(burstExpected, 5000);
    const cpu2 = await server.cpu();
    const deliverySeconds = (b.lastReceiptMs - burst.startMs) / 1000;
    const cpuMs = (a: typeof cpu0, z: typeof cpu0) =>
      z.userMs + z.systemMs - (a.userMs + a.systemMs);

    return {
      opened,
      connectErrors: memory.errors,
      rssPerConnection: memory.rssPerConnection,
      heapPerConnection: memory.heapPerConnection,
      rated: {
        published: rated.published,
        expected: ratedExpected,
        received: r.received,
        lost: ratedExpected - r.received,
        duplicates: r.duplicates,
        p50: r.latency.percentile(50),
        p99: r.latency.percentile(99),
        max: r.latency.max,
        deliveriesPerSecond: r.received / Math.max(1e-3, (r.lastReceiptMs - rated.startMs) / 1000),
        serverCpuMs: cpuMs(cpu0, cpu1),
      },
      burst: {
        published: burst.published,
        expected: burstExpected,
        received: b.received,
        lost: burstExpected - b.received,
        publishSeconds: (burst.endMs - burst.startMs) / 1000,
        deliverySeconds,
        deliveriesPerSecond: b.received / Math.max(1e-3, deliverySeconds),
        p99: b.latency.percentile(99),
        serverCpuMs: cpuMs(cpu1, cpu2),
      },
      endedEarly: b.endedEarly + r.endedEarly,
    };
  } finally {
    await load.closeAll();
    await server.stop();
  }
}

/**
 * 1. Broadcast fan-out: N clients on `/v1/triton/events`, events published through the
 * project's EventPublisher, against a bare relay (one SUBSCRIBE, each message written to
 * every node:http response). A steady rate measures loss and latency; a burst published as
 * fast as Redis takes it measures deliveries per second at saturation.
 */
export async function runFanout(ctx: BenchContext): Promise<ScenarioResult> {
  const { fanoutClients, fanoutRate, fanoutSeconds, fanoutBurst, connsPerProcess } = ctx.options;
  const channel = createKeyspace().allJobsChannel;
  const load = new SseLoad({ perProcess: connsPerProcess });
  const publisher = BenchPublisher.create(ctx.redisUrl);
  const rows: ResultRow[] = [];
  const targets: TargetResult[] = [];
  const details: Record<string, { project: FanoutMeasure; bare: FanoutMeasure }> = {};
  try {
    for (const clients of fanoutClients) {
      // Rounds alternate which server goes first; each figure is the median of the rounds,
      // so one noisy moment of a shared machine does not decide a ratio.
      const projectRounds: FanoutMeasure[] = [];
      const bareRounds: FanoutMeasure[] = [];
      for (let round = 0; round < ctx.options.fanoutRounds; round++) {
        await ctx.admin.flushall();
        ctx.log(`N=${clients}: round ${round + 1}/${ctx.options.fanoutRounds}`);
        const runProject = async () =>
          projectRounds.push(
            await measure(
              ctx,
              { kind: 'mare', env: serviceEnv(ctx) },
              'mare-api',
              clients,
              load,
              publisher,
            ),
          );
        const runBare = async () =>
          bareRounds.push(
            await measure(
              ctx,
              {
                kind: 'bare-relay',
                redisUrl: ctx.redisUrl,
                channel,
                route: 'broadcast',
                heartbeatMs: ctx.options.heartbeatMs,
              },
              'bare relay',
              clients,
              load,
              publisher,
            ),
          );
        if (round % 2 === 0) {
          await runProject();
          await runBare();
        } else {
          await runBare();
          await runProject();
        }
      }
      const project = medianOfRounds(projectRounds, ROUND_FIELDS);
      const bare = medianOfRounds(bareRounds, ROUND_FIELDS);
      details[`N=${clients}`] = { project, bare };
      const n = `N=${clients}`;
      rows.push(
        {
          metric: `${n} connections open`,
          unit: 'conns',
          project: project.opened,
          bare: bare.opened,
        },
        {
          metric: `${n} lost (rate + burst)`,
          unit: 'events',
          project: project.rated.lost + project.burst.lost,
          bare: bare.rated.lost + bare.burst.lost,
        },
        {
          metric: `${n} p50 publish→receipt`,
          unit: 'ms',
          project: project.rated.p50,
          bare: bare.rated.p50,
        },
        {
          metric: `${n} p99 publish→receipt`,
          unit: 'ms',
          project: project.rated.p99,
          bare: bare.rated.p99,
        },
        {
          metric: `${n} max publish→receipt`,
          unit: 'ms',
          project: project.rated.max,
          bare: bare.rated.max,
        },
        {
          metric: `${n} deliveries/s at ${fanoutRate} ev/s`,
          unit: '/s',
          project: project.rated.deliveriesPerSecond,
          bare: bare.rated.deliveriesPerSecond,
        },
        {
          metric: `${n} server CPU per 1k deliveries`,
          unit: 'ms',
          project: (project.rated.serverCpuMs * 1000) / Math.max(1, project.rated.received),
          bare: (bare.rated.serverCpuMs * 1000) / Math.max(1, bare.rated.received),
        },
        {
          metric: `${n} deliveries/s at saturation`,
          unit: '/s',
          project: project.burst.deliveriesPerSecond,
          bare: bare.burst.deliveriesPerSecond,
        },
        {
          metric: `${n} p99 in the burst`,
          unit: 'ms',
          project: project.burst.p99,
          bare: bare.burst.p99,
        },
        {
          metric: `${n} RSS per connection`,
          unit: 'KB',
          project: project.rssPerConnection / 1024,
          bare: bare.rssPerConnection / 1024,
        },
        {
          metric: `${n} heap per connection`,
          unit: 'KB',
          project: project.heapPerConnection / 1024,
          bare: bare.heapPerConnection / 1024,
        },
      );
      const lost = project.rated.lost + project.burst.lost;
      const notOpened = clients - project.opened;
      targets.push(
        {
          target: `${n}: 0 lost events`,
          met: lost === 0 && notOpened === 0,
          figure: `${lost} lost of ${project.rated.expected + project.burst.expected}${notOpened ? `, ${notOpened} connections failed` : ''}`,
        },
        ratioTarget(
          `${n}: p99 ≤ 1.2× bare relay`,
          project.rated.p99,
          bare.rated.p99,
          1.2,
          'atMost',
          ' ms',
        ),
        ratioTarget(
          `${n}: throughput ≥ 0.8× bare relay`,
          project.burst.deliveriesPerSecond,
          bare.burst.deliveriesPerSecond,
          0.8,
          'atLeast',
          '/s',
        ),
      );
    }
  } finally {
    await publisher.close();
    await load.stop();
  }
  return {
    scenario: 'fanout',
    title: 'Broadcast fan-out: /v1/triton/events vs bare relay',
    params: {
      clients: fanoutClients,
      rate: fanoutRate,
      seconds: fanoutSeconds,
      burst: fanoutBurst,
    },
    rows,
    targets,
    notes: [
      'deliveries/s at saturation: events published as fast as Redis takes them; time from the first publish to the last receipt',
      'latency: publisher clock at publish() to the client clock at receipt (other processes, same machine); clients share the 2 cores with the server',
      ...(Math.min(...fanoutClients) < 5000 ? [SMALL_N_RSS_NOTE] : []),
    ],
    details,
  };
}
