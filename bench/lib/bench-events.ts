import { randomUUID } from 'node:crypto';
import type { JobProgressEvent } from '../../src/contract/index.js';

/**
 * Benchmark events are ordinary `job:progress` events whose `template_id` carries
 * `bench:{n}:{sentAtMs}`: a run-wide counter (to count losses and duplicates) and the
 * publisher's clock when it called publish (to measure publish→receipt in another process).
 * Neither mare-api nor the baselines look at `template_id`, so nothing else changes.
 */
export const BENCH_MARKER = '"template_id":"bench:';

/** The draft of benchmark event `n` for `jobId`, stamped `sentAtMs` (see {@link epochMs}). */
export function benchEventDraft(
  jobId: string,
  clientId: string,
  n: number,
  sentAtMs: number,
): Omit<JobProgressEvent, 'seq'> {
  return {
    event_type: 'job:progress',
    timestamp: new Date(sentAtMs).toISOString(),
    job_id: jobId,
    client_id: clientId,
    status: 'running',
    progress: 50,
    templates_done: 3,
    templates_total: 7,
    template_id: `bench:${n}:${sentAtMs.toFixed(3)}`,
  };
}

/** Reads the counter and send time of a frame's benchmark marker; undefined when it has none. */
export function readBenchMarker(frame: string): { n: number; sentAtMs: number } | undefined {
  const at = frame.indexOf(BENCH_MARKER);
  if (at < 0) return undefined;
  const start = at + BENCH_MARKER.length;
  const colon = frame.indexOf(':', start);
  const quote = frame.indexOf('"', colon);
  if (colon < 0 || quote < 0) return undefined;
  return {
    n: Number(frame.slice(start, colon)),
    sentAtMs: Number(frame.slice(colon + 1, quote)),
  };
}

/** `count` fresh job ids. */
export function jobIds(count: number): string[] {
  return Array.from({ length: count }, () => randomUUID());
}
