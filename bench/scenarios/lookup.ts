import { randomUUID } from 'node:crypto';
import { createKeyspace, statusDocumentFromTerminalEvent } from '../../src/contract/index.js';
import { serviceEnv, type BenchContext } from '../lib/bench-context.js';
import { BenchChild } from '../lib/bench-child.js';
import { ratioTarget, type ScenarioResult } from '../lib/bench-report.js';
import type { HttpLoadResult } from '../lib/autocannon-child.js';
import { startServerProcess, type ServerProcess } from '../lib/server-process.js';

interface LookupMeasure extends HttpLoadResult {
  serverCpuMs: number;
}

/** Caches `count` completed jobs' documents exactly as mare-api caches them; returns their ids. */
async function seedCache(ctx: BenchContext, count: number): Promise<string[]> {
  const keyspace = createKeyspace();
  const ids: string[] = [];
  const pipeline = ctx.admin.pipeline();
  const now = new Date().toISOString();
  for (let i = 0; i < count; i++) {
    const jobId = randomUUID();
    ids.push(jobId);
    const doc = statusDocumentFromTerminalEvent({
      event_type: 'job:completed',
      timestamp: now,
      job_id: jobId,
      client_id: randomUUID(),
      status: 'completed',
      template_ids: Array.from({ length: 7 }, () => randomUUID()),
      template_count: 7,
      generation_duration_ms: 2000,
      completed_at: now,
      seq: 9,
    });
    pipeline.set(keyspace.jobResultKey(jobId), JSON.stringify(doc), 'EX', 3600);
  }
  await pipeline.exec();
  return ids;
}

/** One server's figures over every round: medians of the rounds, CPU summed. */
function combine(rounds: LookupMeasure[]): LookupMeasure & { rounds: LookupMeasure[] } {
  const median = (f: (m: LookupMeasure) => number) => {
    const xs = rounds.map(f).sort((a, b) => a - b);
    const mid = Math.floor(xs.length / 2);
    return xs.length % 2 ? (xs[mid] ?? NaN) : ((xs[mid - 1] ?? NaN) + (xs[mid] ?? NaN)) / 2;
  };
  const sum = (f: (m: LookupMeasure) => number) => rounds.reduce((a, m) => a + f(m), 0);
  return {
    requests: sum((m) => m.requests),
    seconds: sum((m) => m.seconds),
    requestsPerSecond: median((m) => m.requestsPerSecond),
    p50: median((m) => m.p50),
    p99: median((m) => m.p99),
    max: Math.max(...rounds.map((m) => m.max)),
    non2xx: sum((m) => m.non2xx),
    errors: sum((m) => m.errors),
    timeouts: sum((m) => m.timeouts),
    bytesPerSecond: median((m) => m.bytesPerSecond),
    serverCpuMs: sum((m) => m.serverCpuMs),
    rounds,
  };
}

async function measureRound(
  server: ServerProcess,
  cannon: BenchChild,
  load: Record<string, unknown>,
): Promise<LookupMeasure> {
  const cpu0 = await server.cpu();
  const result = await cannon.request<HttpLoadResult>('run', { ...load, url: server.url });
  const cpu1 = await server.cpu();
  return { ...result, serverCpuMs: cpu1.userMs + cpu1.systemMs - cpu0.userMs - cpu0.systemMs };
}

/**
 * 4. Cache-first lookup: `GET /v1/triton/jobs/{id}` on cached (finished) jobs, against a
 * node:http server doing one Redis GET per request; autocannon runs in a separate process.
 */
export async function runLookup(ctx: BenchContext): Promise<ScenarioResult> {
  const { lookupJobs, lookupConnections, lookupSeconds, lookupRounds } = ctx.options;
  await ctx.admin.flushall();
  const ids = await seedCache(ctx, lookupJobs);
  const paths = ids.map((id) => `/v1/triton/jobs/${id}`);
  const cannon = BenchChild.start('autocannon-child.ts', { name: 'autocannon' });
  const servers: ServerProcess[] = [];
  const projectRounds: LookupMeasure[] = [];
  const bareRounds: LookupMeasure[] = [];
  try {
    // Both servers run throughout, and the rounds alternate which goes first, so that a
    // machine that gets busier or quieter during the run weighs on both alike.
    const mare = await startServerProcess({ kind: 'mare', env: serviceEnv(ctx) }, 'mare-api');
    servers.push(mare);
    const bareServer = await startServerProcess(
      { kind: 'bare-lookup', redisUrl: ctx.redisUrl, keyPrefix: '' },
      'bare lookup server',
    );
    servers.push(bareServer);
    const load = { paths, connections: lookupConnections };
    for (const server of servers)
      await cannon.request('run', { ...load, url: server.url, seconds: 1 });
    for (let round = 0; round < lookupRounds; round++) {
      ctx.log(
        `round ${round + 1}/${lookupRounds}: ${lookupSeconds} s each, ${lookupConnections} connections`,
      );
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) {
        const m = await measureRound(servers[i] as ServerProcess, cannon, {
          ...load,
          seconds: lookupSeconds,
        });
        (i === 0 ? projectRounds : bareRounds).push(m);
      }
    }
  } finally {
    await cannon.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }
  const project = combine(projectRounds);
  const bare = combine(bareRounds);
  const perK = (m: LookupMeasure) => (m.serverCpuMs * 1000) / Math.max(1, m.requests);
  return {
    scenario: 'lookup',
    title: 'Cache-first lookup: GET /v1/triton/jobs/{id} vs node:http + one Redis GET',
    params: {
      jobs: lookupJobs,
      connections: lookupConnections,
      seconds: lookupSeconds,
      rounds: lookupRounds,
    },
    rows: [
      {
        metric: 'requests/s',
        unit: '/s',
        project: project.requestsPerSecond,
        bare: bare.requestsPerSecond,
      },
      { metric: 'p50 latency', unit: 'ms', project: project.p50, bare: bare.p50 },
      { metric: 'p99 latency', unit: 'ms', project: project.p99, bare: bare.p99 },
      { metric: 'max latency', unit: 'ms', project: project.max, bare: bare.max },
      {
        metric: 'non-2xx responses',
        unit: 'responses',
        project: project.non2xx,
        bare: bare.non2xx,
      },
      { metric: 'errors', unit: 'errors', project: project.errors, bare: bare.errors },
      {
        metric: 'server CPU per 1k requests',
        unit: 'ms',
        project: perK(project),
        bare: perK(bare),
      },
    ],
    targets: [
      ratioTarget(
        'lookup: ≥ 0.9× bare requests/s',
        project.requestsPerSecond,
        bare.requestsPerSecond,
        0.9,
        'atLeast',
        '/s',
      ),
      ratioTarget('lookup: p99 ≤ 1.3× bare', project.p99, bare.p99, 1.3, 'atMost', ' ms'),
      {
        target: 'lookup: every response 2xx',
        met: project.non2xx === 0 && project.errors === 0,
        figure: `${project.non2xx} non-2xx, ${project.errors} errors`,
      },
    ],
    notes: ['requests/s and latencies: median of the rounds; CPU: summed over them'],
    details: { project, bare },
  };
}
