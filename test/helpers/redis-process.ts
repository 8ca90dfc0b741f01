import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';

/** A `redis-server` a test helper started (a cluster node, a replica, a sentinel…). */
export interface RedisProcess {
  readonly port: number;
  readonly child: ChildProcess;
}

/** Whether the process still runs. */
export function alive(node: RedisProcess): boolean {
  return node.child.exitCode === null && node.child.signalCode === null;
}

/**
 * Starts `redis-server` with `args` (which name `port`) and resolves once its output matches
 * `ready`: by default a data node's "Ready to accept connections".
 */
export async function spawnRedisServer(
  port: number,
  args: string[],
  ready = /Ready to accept connections/,
): Promise<RedisProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () => reject(new Error(`redis-server ${port} did not start: ${output}`)),
      10_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server ${port} exited (${code}): ${output.slice(-500)}`));
    });
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return { port, child };
}

/** Runs `start` on a free port, and on another while the one it picked is taken meanwhile. */
export async function onFreePort(
  start: (port: number) => Promise<RedisProcess>,
): Promise<RedisProcess> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      if (attempt >= 4 || !/Address already in use/i.test((err as Error).message)) throw err;
    }
  }
}

/** Runs one command on one server, on a connection of its own. */
export async function askRedis<T>(port: number, command: string, ...args: string[]): Promise<T> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.call(command, ...args)) as T;
  } finally {
    redis.disconnect();
  }
}

/** SIGKILLs every process still running and waits until each has exited. */
export async function killAll(nodes: readonly RedisProcess[]): Promise<void> {
  await Promise.all(
    nodes.filter(alive).map(
      (node) =>
        new Promise<void>((resolve) => {
          node.child.once('exit', () => resolve());
          node.child.kill('SIGKILL');
        }),
    ),
  );
}
