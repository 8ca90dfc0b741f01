import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { freePort } from '../helpers/ports.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { startRedis } from '../helpers/redis.js';
import { openSse, payloads, type SseConnection } from '../helpers/sse-client.js';
import { createClientWithProposition, http } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { expectWholeRun, type EventData as Event } from '../helpers/events.js';

/**
 * The programs as an operator runs them: real processes started the way the npm scripts start
 * them (`node --import tsx src/…`), configured only through their environment, talking over
 * real ports. The launcher with no configuration; the start-up failures a newcomer meets first;
 * and the production shape (separate API, workers and gateways on one Redis and one Postgres).
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PROCESS_TIMEOUT_MS = 90_000;

type LogEntry = Record<string, unknown> & { msg?: string; level?: number; service?: string };

/** One running program: its output as it arrives, parsed where it is JSON log lines. */
interface Program {
  name: string;
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Every stdout line that parsed as a JSON log entry. */
  readonly logs: LogEntry[];
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  exited: Promise<number | string>;
  readonly running: boolean;
  /** Waits for a log entry whose message matches; fails early, with the output, if the process exits. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<LogEntry>;
}

const programs: Program[] = [];
const strayPids = new Set<number>();
const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `src/<script>` as `npm run start…` does, with exactly `env` (plus PATH, HOME and JSON
 * logs): nothing leaks in from the test runner's environment. Each program leads its own
 * process group, so that cleanup (and a Ctrl-C) reaches everything it started in that group.
 */
function startProgram(name: string, script: string, env: Record<string, string>): Program {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? tmpdir(),
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      ...env,
    },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let partial = '';
  const logs: LogEntry[] = [];
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogEntry);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let running = true;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const program: Program = {
    name,
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    logs,
    exited,
    get running() {
      return running;
    },
    waitForLog: async (pattern, timeoutMs = PROCESS_TIMEOUT_MS) => {
      try {
        return await waitFor(
          `${name} to log ${String(pattern)}`,
          () => {
            const found = logs.find((entry) => pattern.test(entry.msg ?? ''));
            if (found) return found;
            if (!running) throw new Error(`${name} exited`);
            return undefined;
          },
          { timeoutMs, intervalMs: 50 },
        );
      } catch (err) {
        throw new Error(
          `${(err as Error).message}\n--- ${name} stdout ---\n${stdout.slice(-4000)}\n--- ${name} stderr ---\n${stderr.slice(-4000)}`,
        );
      }
    },
  };
  programs.push(program);
  return program;
}

/** Resolves with the exit code, or fails after `timeoutMs` saying what the program printed. */
async function exitOf(program: Program, timeoutMs = 20_000): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `${program.name} did not exit within ${timeoutMs} ms\n${program.stdout.slice(-3000)}\n${program.stderr.slice(-3000)}`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([program.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Non-empty lines a program printed, on both streams. */
function printedLines(program: Program): string[] {
  return (program.stdout + program.stderr).split('\n').filter((line) => line.trim() !== '');
}

/** Waits for an SSE stream to end (the server closes a job's stream after its terminal event). */
async function ended(sse: SseConnection, what: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(what, () => sse.isEnded, { timeoutMs });
}

afterAll(async () => {
  // Whatever a failed test left behind: every program's whole process group, then any
  // redis-server a launcher started (it runs in a group of its own).
  for (const program of programs) {
    if (program.running && program.child.pid) {
      try {
        process.kill(-program.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await Promise.all(programs.map((p) => p.exited));
  for (const pid of strayPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('npm start: the launcher with no configuration', () => {
  const dataDir = tempDir('triton-launcher-');
  let launcher: Program;
  let tritonUrl: string;
  let mareUrl: string;
  let redisPid: number;
  let clientId: string;
  let jobId: string;

  async function startLauncher(): Promise<Program> {
    const [tritonPort, marePort, redisPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
    ]);
    tritonUrl = `http://127.0.0.1:${tritonPort}`;
    mareUrl = `http://127.0.0.1:${marePort}`;
    const program = startProgram('launcher', 'src/cli/start.ts', {
      DATA_DIR: dataDir,
      TRITON_API_PORT: String(tritonPort),
      MARE_API_PORT: String(marePort),
      EMBEDDED_REDIS_PORT: String(redisPort),
      GENERATION_STEP_MS: '20',
    });
    const started = await program.waitForLog(/^Started redis-server \(pid \d+\)/);
    redisPid = Number(/pid (\d+)/.exec(started.msg ?? '')?.[1]);
    strayPids.add(redisPid);
    const up = await program.waitForLog(/^The system is up/);
    const msg = up.msg ?? '';
    // It says what runs where.
    expect(msg).toMatch(new RegExp(`triton-api\\s+${tritonUrl}\\s`));
    expect(msg).toMatch(new RegExp(`mare-api\\s+${mareUrl}\\s`));
    expect(msg).toContain(`redis://127.0.0.1:${redisPort}`);
    expect(msg).toContain(`embedded redis-server, data in ${path.join(dataDir, 'redis')}`);
    expect(msg).toContain(`PGlite ${path.join(dataDir, 'pglite')}`);
    return program;
  }

  it(
    'starts redis-server, embedded PGlite and both APIs, and says what runs where',
    { timeout: 120_000 },
    async () => {
      launcher = await startLauncher();
      expect(alive(redisPid)).toBe(true);
      for (const url of [tritonUrl, mareUrl]) {
        const health = await http('GET', `${url}/health`);
        expect(health.status).toBe(200);
      }
    },
  );

  it('runs a job submitted through mare-api to completion, watched over SSE', async () => {
    clientId = await createClientWithProposition(tritonUrl);
    const submitted = await http<{ job_id: string; status: string }>(
      'POST',
      `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
    );
    expect(submitted.status).toBe(202);
    jobId = submitted.body.job_id;
    const sse = await openSse(`${mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
    await ended(sse, `the job's stream to end`);
    const events = payloads<Event>(sse);
    expect(events[0]?.event_type).toBe('job:queued');
    expect(events.at(-1)).toMatchObject({ event_type: 'job:completed', template_count: 7 });
    expectWholeRun(events);
  });

  it('stops on Ctrl-C (SIGINT to its process group) within seconds, exit code 0, redis-server gone', async () => {
    const pid = launcher.child.pid ?? 0;
    const signalledAt = Date.now();
    // What a terminal does on Ctrl-C: the signal goes to the whole foreground process group.
    process.kill(-pid, 'SIGINT');
    expect(await exitOf(launcher, 15_000)).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    expect(launcher.logs.map((l) => l.msg)).toContain('Stopped');
    // The launcher stopped the redis-server it started (it is not in the signalled group).
    await waitFor('redis-server to be gone', () => !alive(redisPid), { timeoutMs: 5000 });
  });

  it(
    'starts again on the same DATA_DIR with the client, the job and its cached result still there',
    { timeout: 120_000 },
    async () => {
      launcher = await startLauncher();
      const clients = await http<{ clients: Array<{ id: string }> }>(
        'GET',
        `${tritonUrl}/clients/`,
      );
      expect(clients.body.clients.map((c) => c.id)).toContain(clientId);
      const lookup = await http<{ status: string; template_count: number }>(
        'GET',
        `${mareUrl}/v1/triton/jobs/${jobId}`,
      );
      expect(lookup.status).toBe(200);
      expect(lookup.body).toMatchObject({ status: 'completed', template_count: 7 });
      // Redis kept its data (AOF under DATA_DIR/redis): the lookup is answered from the cache.
      expect(lookup.headers.get('x-cache')).toBe('hit');
    },
  );

  it('treats a signal repeated within a second (a wrapper forwarding the same Ctrl-C) as one and still exits 0', async () => {
    launcher.child.kill('SIGINT');
    launcher.child.kill('SIGINT');
    expect(await exitOf(launcher, 15_000)).toBe(0);
    const messages = launcher.logs.map((l) => l.msg);
    expect(messages).toContain('Stopped');
    expect(messages.some((m) => m?.includes('exiting now'))).toBe(false);
    await waitFor('redis-server to be gone', () => !alive(redisPid), { timeoutMs: 5000 });
  });
});

describe.concurrent('start-up failures print one line that says what to do', () => {
  it('the launcher without redis-server on PATH names redis-server and how to install it, and exits non-zero', async ({
    expect,
  }) => {
    const program = startProgram('launcher without redis-server', 'src/cli/start.ts', {
      // node itself is spawned by absolute path; an empty PATH hides redis-server.
      PATH: tempDir('triton-empty-path-'),
      DATA_DIR: tempDir('triton-no-redis-'),
      EMBEDDED_REDIS_PORT: String(await freePort()),
      TRITON_API_PORT: String(await freePort()),
      MARE_API_PORT: String(await freePort()),
    });
    expect(await exitOf(program, 60_000)).not.toBe(0);
    const lines = printedLines(program);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/redis-server/);
    expect(lines[0]).toMatch(/apt-get install -y redis-server/);
    expect(lines[0]).toMatch(/REDIS_URL/);
  });

  it('start:mare-api without REDIS_URL says to set REDIS_URL and exits 1', async ({ expect }) => {
    const program = startProgram('mare-api without REDIS_URL', 'src/mare/main-api.ts', {
      MARE_API_PORT: String(await freePort()),
    });
    expect(await exitOf(program, 60_000)).toBe(1);
    const lines = printedLines(program);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^REDIS_URL is not set/);
  });

  it('start:triton-worker without DATABASE_URL says a separate worker needs Postgres and exits 1', async ({
    expect,
  }) => {
    const program = startProgram('worker without DATABASE_URL', 'src/triton/main-worker.ts', {
      // Never contacted: the missing database is reported before anything connects.
      REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(await exitOf(program, 60_000)).toBe(1);
    const lines = printedLines(program);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^DATABASE_URL is not set/);
  });

  it.for([
    ['src/mare/main-api.ts', 'MARE_API_PORT', 'abc'],
    ['src/cli/start.ts', 'EMBEDDED_REDIS_PORT', '70000'],
    ['src/triton/main-api.ts', 'DATABASE_URL', 'mysql://127.0.0.1/triton'],
    ['src/triton/main-worker.ts', 'GENERATION_STEP_MS', '-5'],
  ] as const)(
    '%s with %s=%s exits 1 with one line naming the variable',
    async ([script, name, value], { expect }) => {
      const program = startProgram(`${script} with ${name}=${value}`, script, {
        REDIS_URL: 'redis://127.0.0.1:1',
        [name]: value,
      });
      expect(await exitOf(program, 60_000)).toBe(1);
      const lines = printedLines(program);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^Invalid configuration: ${name}: .*${value}`));
    },
  );
});

describe('production shape: separate processes on one Redis and one Postgres', () => {
  let redis: RedisServer | undefined;
  let database: { url: string; drop: () => Promise<void> } | undefined;
  let tritonApi: Program;
  let workers: Program[];
  let gateways: Program[];
  let tritonUrl: string;
  let gatewayUrls: string[];
  let jobIds: string[];

  beforeAll(async () => {
    redis = await startRedis();
    database = await createTestDatabase();
    const common = { REDIS_URL: redis.url, DATABASE_URL: database.url };
    const tritonPort = await freePort();
    tritonUrl = `http://127.0.0.1:${tritonPort}`;
    // Started all at once, as an orchestrator would: the three database users race to migrate.
    tritonApi = startProgram('triton-api', 'src/triton/main-api.ts', {
      ...common,
      TRITON_API_PORT: String(tritonPort),
      TRITON_API_WORKER: 'false',
    });
    workers = [1, 2].map((n) =>
      startProgram(`triton-worker ${n}`, 'src/triton/main-worker.ts', {
        ...common,
        // One job at a time, each taking a while: both workers must take a share.
        WORKER_CONCURRENCY: '1',
        GENERATION_STEP_MS: '100',
      }),
    );
    const gatewayPorts = [await freePort(), await freePort()];
    gatewayUrls = gatewayPorts.map((port) => `http://127.0.0.1:${port}`);
    gateways = gatewayPorts.map((port, i) =>
      startProgram(`mare-api ${i + 1}`, 'src/mare/main-api.ts', {
        REDIS_URL: common.REDIS_URL,
        MARE_API_PORT: String(port),
        TRITON_API_URL: tritonUrl,
      }),
    );
    await Promise.all([
      tritonApi.waitForLog(/^Server listening at/),
      ...workers.map((w) => w.waitForLog(/^Worker running/)),
      ...gateways.map((g) => g.waitForLog(/^Server listening at/)),
    ]);
  }, 150_000);

  afterAll(async () => {
    const parts = [tritonApi, ...(workers ?? []), ...(gateways ?? [])].filter(Boolean);
    for (const part of parts) {
      if (part.running && part.child.pid) process.kill(-part.child.pid, 'SIGKILL');
    }
    await Promise.all(parts.map((p) => p.exited));
    await redis?.close();
    await database?.drop();
  });

  it(
    'runs jobs submitted through one gateway on both workers, streamed through the other gateway',
    { timeout: 90_000 },
    async () => {
      const [gateway1, gateway2] = gatewayUrls as [string, string];
      expect(tritonApi.logs.some((l) => l.msg?.startsWith('Worker running'))).toBe(false);
      const clientId = await createClientWithProposition(tritonUrl);
      const all = await openSse(`${gateway2}/v1/triton/events`);
      try {
        jobIds = [];
        for (let i = 0; i < 6; i++) {
          const res = await http<{ job_id: string }>(
            'POST',
            `${gateway1}/v1/triton/clients/${clientId}/generate-templates`,
          );
          expect(res.status).toBe(202);
          jobIds.push(res.body.job_id);
        }
        const streams = await Promise.all(
          jobIds.map((id) => openSse(`${gateway2}/v1/triton/jobs/${id}/subscribe`)),
        );
        await Promise.all(streams.map((s, i) => ended(s, `job ${i + 1}'s stream to end`, 60_000)));
        for (const stream of streams) {
          const events = payloads<Event>(stream);
          expectWholeRun(events);
          expect(events.at(-1)?.event_type).toBe('job:completed');
        }

        await waitFor('every job completed on the all-jobs stream', () =>
          jobIds.every((id) =>
            payloads<Event>(all).some((e) => e.job_id === id && e.event_type === 'job:completed'),
          ),
        );
      } finally {
        all.close();
      }

      // Workers have no HTTP server: their logs say which jobs each one ran.
      const ranBy = workers.map(
        (w) =>
          new Set(
            w.logs.flatMap((l) => /^Job (\S+) completed/.exec(l.msg ?? '')?.slice(1, 2) ?? []),
          ),
      );
      const [first, second] = ranBy as [Set<string>, Set<string>];
      expect(first.size).toBeGreaterThan(0);
      expect(second.size).toBeGreaterThan(0);
      expect([...first].filter((id) => second.has(id))).toEqual([]);
      expect([...first, ...second].sort()).toEqual([...jobIds].sort());
    },
  );

  it('answers the cached lookup of every finished job on both gateways', async () => {
    for (const gateway of gatewayUrls) {
      for (const id of jobIds) {
        const lookup = await waitFor(`a cache hit for ${id} on ${gateway}`, async () => {
          const res = await http<{ job_id: string; status: string }>(
            'GET',
            `${gateway}/v1/triton/jobs/${id}`,
          );
          return res.headers.get('x-cache') === 'hit' && res;
        });
        expect(lookup.status).toBe(200);
        expect(lookup.body).toMatchObject({ job_id: id, status: 'completed' });
      }
    }
  });

  it('stops every part cleanly on SIGTERM, exit code 0', { timeout: 60_000 }, async () => {
    const parts = [...gateways, ...workers, tritonApi];
    for (const part of parts) part.child.kill('SIGTERM');
    const codes = await Promise.all(parts.map((part) => exitOf(part, 40_000)));
    expect(Object.fromEntries(parts.map((p, i) => [p.name, codes[i]]))).toEqual(
      Object.fromEntries(parts.map((p) => [p.name, 0])),
    );
  });
});
