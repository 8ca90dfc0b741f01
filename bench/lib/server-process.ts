import path from 'node:path';
import { BenchChild, type ChildCpu, type ChildMemory } from './bench-child.js';
import type { ServerInfo, ServerSpec } from './server-child.js';

/** A server under test in a process of its own. */
export interface ServerProcess {
  readonly name: string;
  readonly info: ServerInfo;
  /** The base URL it serves (mare-api or the baseline). */
  readonly url: string;
  memory(): Promise<ChildMemory>;
  cpu(): Promise<ChildCpu>;
  /** Calls a kind-specific request (e.g. `waitCompleted` of the raw BullMQ worker). */
  call<T>(name: string, payload?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

let cpuProfileDir: string | undefined;

/** Makes every server process started from now on write a V8 CPU profile into `dir` when it exits. */
export function profileServersInto(dir: string | undefined): void {
  cpuProfileDir = dir;
}

/** Forks `server-child.ts` with `spec` and waits until it serves. */
export async function startServerProcess(spec: ServerSpec, name: string): Promise<ServerProcess> {
  const profile = cpuProfileDir
    ? [
        '--cpu-prof',
        // One directory per server: each thread (tsx's loader runs in one) writes its own file.
        `--cpu-prof-dir=${path.join(cpuProfileDir, `${name.replace(/[^\w.-]+/g, '-')}-${Date.now()}`)}`,
      ]
    : [];
  const child = BenchChild.start('server-child.ts', {
    args: [JSON.stringify(spec)],
    nodeFlags: ['--expose-gc', ...profile],
    name,
  });
  let info: ServerInfo;
  try {
    info = await child.request<ServerInfo>('info');
  } catch (err) {
    await child.stop();
    throw err;
  }
  return {
    name,
    info,
    url: info.url ?? '',
    memory: () => child.memory(),
    cpu: () => child.cpu(),
    call: <T>(call: string, payload: Record<string, unknown> = {}) =>
      child.request<T>('call', { name: call, ...payload }),
    stop: () => child.stop(),
  };
}
