/**
 * `npm run bench`: each scenario runs the project and a bare baseline in the same run, prints
 * one table (both figures and project/bare), and the run ends with its targets, met or
 * not. Results go to bench/results/ as JSON. `npm run bench -- --help` lists the options.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { RedisServer } from '../src/cli/redis-server.js';
import { freePort } from '../test/helpers/ports.js';
import type { BenchContext } from './lib/bench-context.js';
import {
  parseBenchOptions,
  USAGE,
  type BenchOptions,
  type ScenarioName,
} from './lib/bench-options.js';
import {
  formatScenario,
  formatSummary,
  machineInfo,
  writeResults,
  type ScenarioResult,
} from './lib/bench-report.js';
import { profileServersInto } from './lib/server-process.js';
import { runDeltas } from './scenarios/deltas.js';
import { runCluster } from './scenarios/cluster.js';
import { runFanout } from './scenarios/fanout.js';
import { runIdleMemory } from './scenarios/idle-memory.js';
import { runLookup } from './scenarios/lookup.js';
import { runPerJob } from './scenarios/per-job.js';
import { runPolling } from './scenarios/polling.js';
import { runQueue } from './scenarios/queue.js';

const RUNNERS: Record<ScenarioName, (ctx: BenchContext) => Promise<ScenarioResult>> = {
  fanout: runFanout,
  'per-job': runPerJob,
  deltas: runDeltas,
  idle: runIdleMemory,
  lookup: runLookup,
  polling: runPolling,
  queue: runQueue,
  cluster: runCluster,
};

/** The most connections one process of this run holds open (the server's side). */
function connectionsNeeded(options: BenchOptions): number {
  const sizes: number[] = [];
  if (options.scenarios.includes('fanout')) sizes.push(...options.fanoutClients);
  if (options.scenarios.includes('per-job')) sizes.push(options.perJobJobs);
  if (options.scenarios.includes('deltas'))
    sizes.push(options.deltaJobs * options.deltaWatchers + options.deltaAllWatchers);
  if (options.scenarios.includes('idle')) sizes.push(options.idleClients);
  if (options.scenarios.includes('cluster')) sizes.push(options.clusterJobs + 1);
  return Math.max(0, ...sizes);
}

/**
 * Ten thousand connections need as many file descriptors in the server's process: when the
 * soft limit is lower, run again under `bash -c 'ulimit -n …'` (children inherit the limit).
 */
function ensureFileLimit(options: BenchOptions): void {
  const needed = connectionsNeeded(options) + 2000;
  const soft = Number(execFileSync('bash', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
  if (!Number.isFinite(soft) || soft >= needed) return;
  if (process.env.BENCH_NOFILE_RAISED) {
    process.stderr.write(
      `warning: ulimit -n is ${soft}, below the ${needed} this run needs; connections may fail\n`,
    );
    return;
  }
  const target = Math.max(needed, 65_536);
  process.stderr.write(`ulimit -n is ${soft}: running again with ulimit -n ${target}\n`);
  const result = spawnSync(
    'bash',
    [
      '-c',
      `ulimit -n ${target} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`,
      'bench',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, BENCH_NOFILE_RAISED: '1' } },
  );
  process.exit(result.status ?? 1);
}

/** Loopback connections to one port are limited by the ephemeral port range. */
function warnAboutPorts(options: BenchOptions): void {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    const available = (high ?? 0) - (low ?? 0);
    if (available < connectionsNeeded(options) + 1000) {
      process.stderr.write(
        `warning: only ${available} ephemeral ports (net.ipv4.ip_local_port_range); large runs may fail to connect\n`,
      );
    }
  } catch {
    // Not Linux: nothing to check.
  }
}

async function main(): Promise<void> {
  let parsed: BenchOptions | 'help';
  try {
    parsed = parseBenchOptions(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const options = parsed;
  ensureFileLimit(options);
  warnAboutPorts(options);
  profileServersInto(options.cpuProfileDir && path.resolve(options.cpuProfileDir));

  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const began = Date.now();
  const log = (message: string) =>
    process.stderr.write(
      `[${((Date.now() - began) / 1000).toFixed(1).padStart(6)} s] ${message}\n`,
    );
  log(
    `bench: ${options.scenarios.join(', ')}${options.quick ? ' (quick)' : ''}; ${String(machine.cpus)} CPUs, load ${(machine.loadavg as number[]).map((l) => l.toFixed(2)).join(' ')}`,
  );

  const redis = await RedisServer.start({ port: await freePort() });
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  let postgres: { url: string; stop(): Promise<void> } | undefined;
  const cleanup = async () => {
    admin.disconnect();
    await redis.close();
    await postgres?.stop();
  };
  process.once('SIGINT', () => {
    void cleanup().finally(() => process.exit(130));
  });

  const results: ScenarioResult[] = [];
  try {
    const needsDb = options.scenarios.some((s) => s === 'polling' || s === 'queue');
    if (needsDb && options.database === 'postgres') {
      const { PostgresServer } = await import('../test/helpers/postgres-server.js');
      postgres = await PostgresServer.start();
    }
    const ctx: BenchContext = {
      options,
      redisUrl: redis.url,
      databaseUrl: postgres?.url,
      admin,
      log,
    };
    for (const name of options.scenarios) {
      log(`scenario ${name}`);
      try {
        const result = await RUNNERS[name](ctx);
        results.push(result);
        process.stdout.write(`${formatScenario(result)}\n`);
      } catch (err) {
        log(
          `scenario ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        );
        results.push({
          scenario: name,
          title: `${name} (failed)`,
          params: {},
          rows: [],
          targets: [{ target: 'scenario ran', met: false, figure: (err as Error).message }],
        });
      }
    }
  } finally {
    await cleanup();
  }
  process.stdout.write(`${formatSummary(results)}\n`);
  const file = await writeResults(options.outDir, { startedAt, options, machine, results });
  process.stdout.write(
    `\nResults: ${file}\nMachine: ${String(machine.cpus)} CPUs, load average at start ${(machine.loadavg as number[]).map((l) => l.toFixed(2)).join(' ')} (figures from a busy machine are noisy)\n`,
  );
}

await main();
