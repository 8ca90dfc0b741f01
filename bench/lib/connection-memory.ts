import type { ChildMemory } from './bench-child.js';
import { sleep } from './clock.js';
import type { ServerProcess } from './server-process.js';
import type { SseLoad } from './sse-load.js';

/** Why RSS per connection is not to be trusted for a few hundred connections. */
export const SMALL_N_RSS_NOTE =
  'below ~5,000 connections RSS per connection is noise (V8 reuses heap pages it already holds); read heap per connection';

/** The memory a server holds for a set of open SSE connections. */
export interface ConnectionMemory {
  opened: number;
  errors: Record<string, number>;
  before: ChildMemory;
  after: ChildMemory;
  /** (after − before) / opened, bytes. */
  rssPerConnection: number;
  heapPerConnection: number;
}

/**
 * Opens one connection per path and measures the server's memory before and after (each after
 * a full GC). A first round of connections is opened and closed beforehand, so that code
 * compiled and buffers pooled on first use are not counted against each connection.
 */
export async function openAndMeasure(
  server: ServerProcess,
  load: SseLoad,
  paths: readonly string[],
  settleMs = 1000,
): Promise<ConnectionMemory> {
  const warm = paths.slice(0, Math.min(200, Math.ceil(paths.length / 10)));
  await load.open(server.url, warm);
  await sleep(200);
  await load.closeAll();
  await sleep(300);
  const before = await server.memory();
  const { opened, errors } = await load.open(server.url, paths);
  await sleep(settleMs);
  const after = await server.memory();
  const per = (a: number, b: number) => (opened > 0 ? (a - b) / opened : NaN);
  return {
    opened,
    errors,
    before,
    after,
    rssPerConnection: per(after.rss, before.rss),
    heapPerConnection: per(after.heapUsed, before.heapUsed),
  };
}
