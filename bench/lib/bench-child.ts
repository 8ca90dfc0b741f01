import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IpcResponse } from './ipc.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Memory of a child as it reports it (after a full GC when it was started with --expose-gc). */
export interface ChildMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** CPU time a child has used, in milliseconds. */
export interface ChildCpu {
  userMs: number;
  systemMs: number;
}

export interface BenchChildOptions {
  /** Arguments after the entry file. */
  args?: string[];
  /** Extra Node flags, e.g. `--expose-gc`; tsx's loader is inherited. */
  nodeFlags?: string[];
  /** Name shown in errors. */
  name?: string;
}

/**
 * A child process of the benchmark, running one of the `bench/lib/*-child.ts` entries under
 * tsx, with typed requests over IPC. Each server under test runs in one of these, so its RSS
 * and CPU time are its own.
 */
export class BenchChild {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (err: Error) => void }
  >();
  private readonly exited: Promise<void>;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.on('message', (raw: unknown) => {
      const message = raw as IpcResponse;
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${this.name}: ${message.error}`));
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        for (const waiter of this.pending.values()) {
          waiter.reject(new Error(`${this.name} exited (${signal ?? code})`));
        }
        this.pending.clear();
        resolve();
      });
    });
  }

  /** Forks `bench/lib/{entry}` with tsx's loader (inherited from this process). */
  static start(entry: string, { args = [], nodeFlags = [], name }: BenchChildOptions = {}) {
    const child = fork(path.join(here, entry), args, {
      execArgv: [...process.execArgv, ...nodeFlags],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    return new BenchChild(child, name ?? `${entry} ${args.join(' ')}`.trim());
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Sends one request and resolves with the child's answer. */
  request<T>(type: string, payload: Record<string, unknown> = {}): Promise<T> {
    if (!this.child.connected) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, type, ...payload });
    });
  }

  /** The child's memory after a full GC (it must run with `--expose-gc`). */
  memory(): Promise<ChildMemory> {
    return this.request<ChildMemory>('memory');
  }

  /** The child's CPU time so far. */
  cpu(): Promise<ChildCpu> {
    return this.request<ChildCpu>('cpu');
  }

  /** Resident set size read from /proc, without asking the child (Linux). */
  rssBytes(): number {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
      return kb ? Number(kb) * 1024 : NaN;
    } catch {
      return NaN;
    }
  }

  /** Asks the child to close what it started and exit; kills it after `timeoutMs`. Safe to call twice. */
  stop(timeoutMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return;
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      try {
        await this.request('stop').catch(() => undefined);
        await this.exited;
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.stopping;
  }
}

/** Handlers every child answers: `memory` (after a GC when exposed) and `cpu`. */
export const processStatsHandlers = {
  memory: (): ChildMemory => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) {
      gc();
      gc();
    }
    const m = process.memoryUsage();
    return {
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    };
  },
  cpu: (): ChildCpu => {
    const c = process.cpuUsage();
    return { userMs: c.user / 1000, systemMs: c.system / 1000 };
  },
};
