import { serviceEnv, type BenchContext } from '../lib/bench-context.js';
import { fmt, ratioTarget, type ScenarioResult } from '../lib/bench-report.js';
import {
  openAndMeasure,
  SMALL_N_RSS_NOTE,
  type ConnectionMemory,
} from '../lib/connection-memory.js';
import type { ServerSpec } from '../lib/server-child.js';
import { startServerProcess } from '../lib/server-process.js';
import { SseLoad } from '../lib/sse-load.js';

async function measure(
  ctx: BenchContext,
  spec: ServerSpec,
  name: string,
  load: SseLoad,
): Promise<ConnectionMemory> {
  const server = await startServerProcess(spec, name);
  try {
    ctx.log(`${name}: ${ctx.options.idleClients} idle connections`);
    return await openAndMeasure(
      server,
      load,
      Array<string>(ctx.options.idleClients).fill('/v1/triton/events'),
      2000,
    );
  } finally {
    await load.closeAll();
    await server.stop();
  }
}

/**
 * 3. Idle memory: what one open, quiet SSE connection costs mare-api (`/v1/triton/events`)
 * against a node:http server that only holds the responses open.
 */
export async function runIdleMemory(ctx: BenchContext): Promise<ScenarioResult> {
  await ctx.admin.flushall();
  const load = new SseLoad({ perProcess: ctx.options.connsPerProcess });
  let project: ConnectionMemory;
  let bare: ConnectionMemory;
  try {
    project = await measure(ctx, { kind: 'mare', env: serviceEnv(ctx) }, 'mare-api', load);
    bare = await measure(
      ctx,
      { kind: 'bare-sse', heartbeatMs: ctx.options.heartbeatMs },
      'bare SSE server',
      load,
    );
  } finally {
    await load.stop();
  }
  const kb = (b: number) => b / 1024;
  const mb = (b: number) => b / 2 ** 20;
  return {
    scenario: 'idle',
    title: 'Idle memory per SSE connection: mare-api vs bare node:http SSE server',
    params: { connections: ctx.options.idleClients },
    rows: [
      { metric: 'connections open', unit: 'conns', project: project.opened, bare: bare.opened },
      {
        metric: 'RSS before',
        unit: 'MB',
        project: mb(project.before.rss),
        bare: mb(bare.before.rss),
      },
      {
        metric: 'RSS with connections',
        unit: 'MB',
        project: mb(project.after.rss),
        bare: mb(bare.after.rss),
      },
      {
        metric: 'RSS per connection',
        unit: 'KB',
        project: kb(project.rssPerConnection),
        bare: kb(bare.rssPerConnection),
      },
      {
        metric: 'heap per connection',
        unit: 'KB',
        project: kb(project.heapPerConnection),
        bare: kb(bare.heapPerConnection),
      },
    ],
    targets: [
      ratioTarget(
        'idle: ≤ 1.3× bare memory per connection (RSS)',
        kb(project.rssPerConnection),
        kb(bare.rssPerConnection),
        1.3,
        'atMost',
        ' KB',
      ),
      ratioTarget(
        'idle: ≤ 1.3× bare memory per connection (heap)',
        kb(project.heapPerConnection),
        kb(bare.heapPerConnection),
        1.3,
        'atMost',
        ' KB',
      ),
      {
        target: 'idle: ≤ 16 KB RSS per connection',
        met: kb(project.rssPerConnection) <= 16,
        figure: `${fmt(kb(project.rssPerConnection))} KB`,
      },
    ],
    notes: [
      'memory after a full GC, before and after opening the connections (a first round is opened and closed beforehand); kernel socket buffers are not in RSS',
      ...(ctx.options.idleClients < 5000 ? [SMALL_N_RSS_NOTE] : []),
    ],
    details: { project, bare },
  };
}
