import { Redis } from 'ioredis';
import { createKeyspace } from '../../src/contract/index.js';
import { clusterSlot } from '../../test/helpers/cluster-slot.js';
import { RedisCluster } from '../../test/helpers/redis-cluster.js';
import { serviceEnv, type BenchContext } from '../lib/bench-context.js';
import { jobIds } from '../lib/bench-events.js';
import { BenchPublisher } from '../lib/bench-publisher.js';
import { sleep } from '../lib/clock.js';
import { fmt, type ScenarioResult } from '../lib/bench-report.js';
import { startServerProcess, type ServerProcess } from '../lib/server-process.js';
import { SseLoad } from '../lib/sse-load.js';

/** What a gateway received, by channel, from its own metrics. */
interface Received {
  job: number;
  all: number;
}

async function received(server: ServerProcess): Promise<Received> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const out: Received = { job: 0, all: 0 };
  for (const line of text.split('\n')) {
    if (!line.startsWith('mare_events_received_total{')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.includes('channel="job"')) out.job += value;
    else if (line.includes('channel="all"')) out.all += value;
  }
  return out;
}

const minus = (a: Received, b: Received): Received => ({ job: a.job - b.job, all: a.all - b.all });

/** Runs one command on the Redis node at `port`, on a connection of its own. */
async function onNode<T>(port: number, ...command: string[]): Promise<T> {
  const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
  try {
    return (await redis.call(command[0] ?? 'PING', ...command.slice(1))) as T;
  } finally {
    redis.disconnect();
  }
}

/** CPU time each node has used so far (user + system), ms. */
async function nodesCpu(ports: readonly number[]): Promise<number[]> {
  return Promise.all(
    ports.map(async (port) => {
      const info = await onNode<string>(port, 'INFO', 'cpu');
      const seconds = (name: string) =>
        Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
      return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000;
    }),
  );
}

/** Connections the gateways hold, over every node (short-lived slot refreshes left out). */
async function gatewayConnections(ports: readonly number[]): Promise<number> {
  let total = 0;
  for (const port of ports) {
    const list = await onNode<string>(port, 'CLIENT', 'LIST');
    total += list
      .split('\n')
      .filter((line) => /name=\S*mare-/.test(line) && !line.includes('refresher')).length;
  }
  return total;
}

interface InboundMeasure {
  published: number;
  /** Connections to the cluster per gateway (over every node). */
  connectionsPerGateway: number;
  /** Per gateway that watches its share of the jobs. */
  gateways: Received[];
  /** The gateway with a client on `/v1/triton/events` (and the cacher role). */
  watchingAll: Received;
  lost: number;
  duplicates: number;
  p99: number;
}

/**
 * (a) Inbound per gateway: `clusterGateways` gateways each serve one watcher per job of their
 * share of `clusterJobs` jobs, and one more gateway serves a client of every job's events; the
 * figure is what each one receives from Redis while events are published over all the jobs.
 */
async function measureInbound(
  ctx: BenchContext,
  cluster: RedisCluster,
  load: SseLoad,
): Promise<InboundMeasure> {
  const url = cluster.url;
  const { clusterJobs, clusterGateways, clusterRate, clusterSeconds } = ctx.options;
  const jobs = jobIds(clusterJobs);
  const publisher = BenchPublisher.create(url, { cluster: true });
  const servers: ServerProcess[] = [];
  // The all-jobs client only makes its gateway receive everything; what that gateway received
  // is read from its metrics. Its own count is left out: on a cluster the all-jobs feed is in
  // the global history's order, not in the order publish was called across jobs, and the load
  // client takes any event older than the newest it has for a duplicate.
  const allLoad = new SseLoad({ perProcess: 1 });
  try {
    await publisher.publishQueued(jobs);
    const env = serviceEnv(ctx, { REDIS_URL: url });
    // Started first, it takes the cacher lease too: the gateway that receives everything.
    const all = await startServerProcess({ kind: 'mare', env }, 'gateway watching all');
    servers.push(all);
    const gateways: ServerProcess[] = [];
    for (let i = 0; i < clusterGateways; i++) {
      gateways.push(await startServerProcess({ kind: 'mare', env }, `gateway ${i + 1}`));
    }
    servers.push(...gateways);
    ctx.log(`cluster: ${clusterJobs} job watchers over ${clusterGateways} gateways, 1 all-jobs`);
    await allLoad.open(all.url, ['/v1/triton/events']);
    for (const [i, gateway] of gateways.entries()) {
      const share = jobs.filter((_, j) => j % clusterGateways === i);
      await load.open(
        gateway.url,
        share.map((id) => `/v1/triton/jobs/${id}/subscribe`),
      );
    }
    const warm = await publisher.rated({ rate: clusterRate, seconds: 0.5, jobIds: jobs });
    await load.waitForDeliveries(warm.published, 2000);
    await load.reset();

    ctx.log(`cluster: ${clusterRate} events/s for ${clusterSeconds} s over ${clusterJobs} jobs`);
    const before = await Promise.all(servers.map(received));
    const run = await publisher.rated({ rate: clusterRate, seconds: clusterSeconds, jobIds: jobs });
    // Each event has one job watcher.
    const r = await load.waitForDeliveries(run.published);
    // The all-jobs step of the last events may still be on its way when their job watchers
    // have them: wait for the gateway watching all to have every one (or to stop receiving).
    let last = -1;
    for (;;) {
      const count = (await received(all)).all - (before[0]?.all ?? 0);
      if (count >= run.published || count === last) break;
      last = count;
      await sleep(500);
    }
    const after = await Promise.all(servers.map(received));
    const connections = await gatewayConnections(cluster.nodes.map((n) => n.port));
    const deltas = after.map((a, i) => minus(a, before[i] ?? { job: 0, all: 0 }));
    return {
      published: run.published,
      connectionsPerGateway: connections / servers.length,
      watchingAll: deltas[0] ?? { job: 0, all: 0 },
      gateways: deltas.slice(1),
      lost: run.published - r.received,
      duplicates: r.duplicates,
      p99: r.latency.percentile(99),
    };
  } finally {
    await load.closeAll();
    await allLoad.stop();
    await Promise.all(servers.map((s) => s.stop()));
    await publisher.close();
  }
}

interface PublishMeasure {
  /** Events published per second by `clusterInFlight` concurrent publishes. */
  eventsPerSecond: number;
  /** p99 of one publish call (both steps on a cluster), during the burst, ms. */
  publishP99: number;
  /** p99 publish → received by a watcher, at `clusterRate`, ms. */
  receiptP99: number;
  receiptP50: number;
  lost: number;
  /** Connections the gateway holds (over every node). */
  connectionsPerGateway: number;
  /** Redis CPU per 1,000 events of the burst: the master of the global history's slot. */
  globalMasterCpuPer1k: number;
  /** … the other masters, each (mean). */
  otherMasterCpuPer1k: number;
  /** … every node together, replicas included. */
  allNodesCpuPer1k: number;
  /** The publishing process's CPU per 1,000 events of the burst. */
  publisherCpuPer1k: number;
}

/** Where a publish run's Redis work lands: its nodes, and which of them are masters. */
interface Nodes {
  ports: number[];
  /** The master of the global history's slot (the one Redis, on a single server). */
  globalMaster: number;
  otherMasters: number[];
}

/**
 * (b) Publishing: one gateway with a watcher on each of 100 jobs; `clusterRate` events/s for
 * publish→receipt, then a burst of `clusterBurst` as fast as Redis answers for throughput, and
 * the CPU each Redis node and the publisher spend on it.
 */
async function measurePublish(
  ctx: BenchContext,
  url: string,
  nodes: Nodes,
  name: string,
  load: SseLoad,
): Promise<PublishMeasure> {
  const { clusterRate, clusterSeconds, clusterBurst, clusterInFlight } = ctx.options;
  const jobs = jobIds(100);
  const publisher = BenchPublisher.create(url, { cluster: nodes.ports.length > 1 });
  let server: ServerProcess | undefined;
  try {
    await publisher.publishQueued(jobs);
    server = await startServerProcess(
      { kind: 'mare', env: serviceEnv(ctx, { REDIS_URL: url }) },
      `mare-api on ${name}`,
    );
    await load.open(
      server.url,
      jobs.map((id) => `/v1/triton/jobs/${id}/subscribe`),
    );
    const warm = await publisher.rated({ rate: clusterRate, seconds: 0.5, jobIds: jobs });
    await load.waitForDeliveries(warm.published, 2000);
    const connections = await gatewayConnections(nodes.ports);

    ctx.log(`${name}: ${clusterRate} events/s for ${clusterSeconds} s`);
    await load.reset();
    const rated = await publisher.rated({
      rate: clusterRate,
      seconds: clusterSeconds,
      jobIds: jobs,
    });
    const r = await load.waitForDeliveries(rated.published);

    ctx.log(`${name}: burst of ${clusterBurst} events, ${clusterInFlight} in flight`);
    await load.reset();
    const cpu0 = await nodesCpu(nodes.ports);
    const own0 = process.cpuUsage();
    const burst = await publisher.burst({
      count: clusterBurst,
      jobIds: jobs,
      maxInFlight: clusterInFlight,
    });
    const own = process.cpuUsage(own0);
    const cpu1 = await nodesCpu(nodes.ports);
    const b = await load.waitForDeliveries(burst.published, 5000);
    const per1k = (ms: number) => (ms * 1000) / Math.max(1, burst.published);
    const used = (port: number) => {
      const i = nodes.ports.indexOf(port);
      return (cpu1[i] ?? 0) - (cpu0[i] ?? 0);
    };
    const others = nodes.otherMasters.map(used);
    return {
      eventsPerSecond: burst.published / Math.max(1e-3, (burst.endMs - burst.startMs) / 1000),
      publishP99: burst.publishLatency.percentile(99),
      receiptP99: r.latency.percentile(99),
      receiptP50: r.latency.percentile(50),
      lost: rated.published - r.received + (burst.published - b.received) + burst.failed,
      connectionsPerGateway: connections,
      globalMasterCpuPer1k: per1k(used(nodes.globalMaster)),
      otherMasterCpuPer1k: others.length
        ? per1k(others.reduce((a, c) => a + c, 0) / others.length)
        : NaN,
      allNodesCpuPer1k: per1k(nodes.ports.map(used).reduce((a, c) => a + c, 0)),
      publisherCpuPer1k: per1k((own.user + own.system) / 1000),
    };
  } finally {
    await load.closeAll();
    await server?.stop();
    await publisher.close();
  }
}

/**
 * 7. Redis Cluster: (a) what each gateway receives when gateways split the watched jobs,
 * against a gateway that receives every job's events (as every gateway did with one global
 * subscription); (b) publishing on a 3-master cluster (a replica each) against one Redis, in
 * the same run: throughput at saturation, and publish→receipt.
 */
export async function runCluster(ctx: BenchContext): Promise<ScenarioResult> {
  const { clusterJobs, clusterGateways, clusterRate, clusterBurst, clusterInFlight } = ctx.options;
  ctx.log('cluster: starting a Redis Cluster (3 masters, a replica each)');
  const cluster = await RedisCluster.start();
  const load = new SseLoad({ perProcess: ctx.options.connsPerProcess });
  let inbound: InboundMeasure;
  let onCluster: PublishMeasure;
  let onOne: PublishMeasure;
  try {
    inbound = await measureInbound(ctx, cluster, load);
    await ctx.admin.flushall();
    const single = Number(new URL(ctx.redisUrl).port);
    onOne = await measurePublish(
      ctx,
      ctx.redisUrl,
      { ports: [single], globalMaster: single, otherMasters: [] },
      'one Redis',
      load,
    );
    const globalMaster = await cluster.masterOf(clusterSlot(createKeyspace().globalHistoryKey));
    const masters = [...new Set((await cluster.slots()).map((r) => r.master))];
    onCluster = await measurePublish(
      ctx,
      cluster.url,
      {
        ports: cluster.nodes.map((n) => n.port),
        globalMaster,
        otherMasters: masters.filter((m) => m !== globalMaster),
      },
      'the cluster',
      load,
    );
  } finally {
    await load.stop();
    await cluster.close();
  }
  const shares = inbound.gateways.map((g) => g.job / Math.max(1, inbound.published));
  const maxShare = Math.max(...shares);
  const maxReceived = Math.max(...inbound.gateways.map((g) => g.job + g.all));
  const fairShare = 1 / clusterGateways;
  return {
    scenario: 'cluster',
    title: `Redis Cluster: inbound per gateway (${clusterGateways} gateways, ${clusterJobs} jobs) and publishing (3 masters vs one Redis)`,
    columns: ['cluster', 'baseline'],
    params: {
      jobs: clusterJobs,
      gateways: clusterGateways,
      rate: clusterRate,
      burst: clusterBurst,
      inFlight: clusterInFlight,
    },
    rows: [
      {
        metric: 'inbound: events published',
        unit: 'events',
        project: inbound.published,
        bare: inbound.published,
      },
      {
        metric: `inbound: events received by a gateway (most of ${clusterGateways}; baseline: watching all)`,
        unit: 'events',
        project: maxReceived,
        bare: inbound.watchingAll.job + inbound.watchingAll.all,
      },
      {
        metric: 'inbound: share of all events received',
        unit: 'ratio',
        project: maxShare,
        bare: (inbound.watchingAll.job + inbound.watchingAll.all) / Math.max(1, inbound.published),
      },
      { metric: 'inbound: lost (job watchers)', unit: 'events', project: inbound.lost },
      { metric: 'inbound: p99 publish→receipt (job watchers)', unit: 'ms', project: inbound.p99 },
      {
        metric: `publish: events/s at saturation (${clusterInFlight} in flight; baseline: one Redis)`,
        unit: 'events/s',
        project: onCluster.eventsPerSecond,
        bare: onOne.eventsPerSecond,
      },
      {
        metric: 'publish: p99 of a publish call during the burst',
        unit: 'ms',
        project: onCluster.publishP99,
        bare: onOne.publishP99,
      },
      {
        metric: `publish: p50 publish→receipt at ${clusterRate}/s`,
        unit: 'ms',
        project: onCluster.receiptP50,
        bare: onOne.receiptP50,
      },
      {
        metric: `publish: p99 publish→receipt at ${clusterRate}/s`,
        unit: 'ms',
        project: onCluster.receiptP99,
        bare: onOne.receiptP99,
      },
      { metric: 'publish: lost', unit: 'events', project: onCluster.lost, bare: onOne.lost },
      {
        metric: 'publish: Redis CPU per 1,000 events, master of the global history',
        unit: 'ms',
        project: onCluster.globalMasterCpuPer1k,
        bare: onOne.globalMasterCpuPer1k,
      },
      {
        metric: 'publish: Redis CPU per 1,000 events, each other master',
        unit: 'ms',
        project: onCluster.otherMasterCpuPer1k,
      },
      {
        metric: 'publish: Redis CPU per 1,000 events, all nodes (replicas included)',
        unit: 'ms',
        project: onCluster.allNodesCpuPer1k,
        bare: onOne.allNodesCpuPer1k,
      },
      {
        metric: 'publish: publisher CPU per 1,000 events',
        unit: 'ms',
        project: onCluster.publisherCpuPer1k,
        bare: onOne.publisherCpuPer1k,
      },
      {
        metric: 'connections per gateway (over every node)',
        unit: 'conns',
        project: onCluster.connectionsPerGateway,
        bare: onOne.connectionsPerGateway,
      },
      {
        metric: `connections per gateway, ${clusterGateways + 1} gateways serving watchers`,
        unit: 'conns',
        project: inbound.connectionsPerGateway,
      },
    ],
    targets: [
      {
        target: `cluster: each gateway receives about 1/${clusterGateways} of the job events (≤ 1.1×)`,
        met: maxShare <= fairShare * 1.1 && inbound.gateways.every((g) => g.all === 0),
        figure: `shares ${shares.map((s) => fmt(s)).join(', ')}; the gateway watching all: ${fmt(
          (inbound.watchingAll.job + inbound.watchingAll.all) / Math.max(1, inbound.published),
        )}`,
      },
      {
        target: 'cluster: 0 lost events',
        met: inbound.lost === 0 && onCluster.lost === 0,
        figure: `${inbound.lost} lost (inbound), ${onCluster.lost} lost (publish)`,
      },
    ],
    notes: [
      'Baseline column: for "inbound" rows, a gateway with a client on /v1/triton/events (it receives every job’s events, as every gateway did with one global subscription); for "publish" rows, one redis-server in the same run.',
      'Every Redis node, the gateways, the publisher and the clients share this machine’s cores: the cluster’s six nodes compete with everything else, so its throughput here is no measure of what three masters on three machines do.',
    ],
    details: { inbound, onCluster, onOne },
  };
}
