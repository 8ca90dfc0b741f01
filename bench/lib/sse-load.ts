import { BenchChild } from './bench-child.js';
import { sleep } from './clock.js';
import { LatencyHistogram } from './latency-histogram.js';
import type { DeltaTexts, SseLoadMode, SseLoadReport } from './sse-client-child.js';

/** The merged report of every load process. */
export interface SseLoadTotals {
  connections: number;
  open: number;
  endedEarly: number;
  received: number;
  frames: number;
  merged: number;
  duplicates: number;
  bytes: number;
  firstReceiptMs: number;
  lastReceiptMs: number;
  latency: LatencyHistogram;
}

export interface SseLoadOptions {
  /** Connections per client process. @defaultValue 5000 */
  perProcess?: number;
  /** Connections being opened at once per process (the listen backlog is 511). @defaultValue 100 */
  maxPending?: number;
}

/**
 * SSE clients spread over child processes (one per `perProcess` connections), so that tens
 * of thousands of connections neither share the server's process nor one event loop.
 */
export class SseLoad {
  private readonly children: BenchChild[] = [];
  private readonly perProcess: number;
  private readonly maxPending: number;

  constructor({ perProcess = 5000, maxPending = 100 }: SseLoadOptions = {}) {
    this.perProcess = perProcess;
    this.maxPending = maxPending;
  }

  /**
   * Opens one connection per path on `baseUrl`, read as `mode` says; resolves with how many
   * opened and the errors of those that did not.
   */
  async open(
    baseUrl: string,
    paths: readonly string[],
    mode: SseLoadMode = 'marker',
  ): Promise<{ opened: number; errors: Record<string, number> }> {
    const processes = Math.max(1, Math.ceil(paths.length / this.perProcess));
    while (this.children.length < processes) {
      this.children.push(
        BenchChild.start('sse-client-child.ts', { name: `sse-load-${this.children.length + 1}` }),
      );
    }
    const shares = this.children.slice(0, processes).map((child, i) => {
      const share = paths.filter((_, j) => j % processes === i);
      return child.request<{ opened: number; errors: Record<string, number> }>('open', {
        baseUrl,
        paths: share,
        maxPending: this.maxPending,
        mode,
      });
    });
    const results = await Promise.all(shares);
    const errors: Record<string, number> = {};
    let opened = 0;
    for (const r of results) {
      opened += r.opened;
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    }
    return { opened, errors };
  }

  async reset(): Promise<void> {
    await Promise.all(this.children.map((c) => c.request('reset')));
  }

  async report(): Promise<SseLoadTotals> {
    const reports = await Promise.all(this.children.map((c) => c.request<SseLoadReport>('report')));
    const latency = new LatencyHistogram();
    const totals: SseLoadTotals = {
      connections: 0,
      open: 0,
      endedEarly: 0,
      received: 0,
      frames: 0,
      merged: 0,
      duplicates: 0,
      bytes: 0,
      firstReceiptMs: 0,
      lastReceiptMs: 0,
      latency,
    };
    for (const r of reports) {
      totals.connections += r.connections;
      totals.open += r.open;
      totals.endedEarly += r.endedEarly;
      totals.received += r.received;
      totals.frames += r.frames;
      totals.merged += r.merged;
      totals.duplicates += r.duplicates;
      totals.bytes += r.bytes;
      if (r.firstReceiptMs && (!totals.firstReceiptMs || r.firstReceiptMs < totals.firstReceiptMs))
        totals.firstReceiptMs = r.firstReceiptMs;
      totals.lastReceiptMs = Math.max(totals.lastReceiptMs, r.lastReceiptMs);
      latency.merge(r.histogram);
    }
    return totals;
  }

  /**
   * Polls until `expected` deliveries have arrived, or nothing new arrived for `stallMs`
   * (what is missing then is lost), and returns the last report.
   */
  async waitForDeliveries(expected: number, stallMs = 3000): Promise<SseLoadTotals> {
    let last = await this.report();
    let lastChange = Date.now();
    while (last.received < expected && Date.now() - lastChange < stallMs) {
      await sleep(100);
      const now = await this.report();
      if (now.received !== last.received) lastChange = Date.now();
      last = now;
    }
    return last;
  }

  /** Every `delta`-mode connection's text of each template since `reset`, counted by digest. */
  async texts(): Promise<DeltaTexts> {
    const all = await Promise.all(this.children.map((c) => c.request<DeltaTexts>('texts')));
    const merged: DeltaTexts = {};
    for (const texts of all) {
      for (const [template, counts] of Object.entries(texts)) {
        const into = (merged[template] ??= {});
        for (const [digest, n] of Object.entries(counts)) into[digest] = (into[digest] ?? 0) + n;
      }
    }
    return merged;
  }

  /** CPU time of the load processes, summed (ms). */
  async cpuMs(): Promise<number> {
    const all = await Promise.all(this.children.map((c) => c.cpu()));
    return all.reduce((sum, c) => sum + c.userMs + c.systemMs, 0);
  }

  /** Closes every connection (the processes stay for the next server). */
  async closeAll(): Promise<void> {
    await Promise.all(this.children.map((c) => c.request('close')));
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.splice(0).map((c) => c.stop()));
  }
}
