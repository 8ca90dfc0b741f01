/**
 * Milliseconds since the epoch with sub-millisecond resolution, comparable between processes
 * on one machine: `performance.timeOrigin` is the wall-clock time at which each process's
 * monotonic clock started. Publishers stamp events with it and clients in other processes
 * subtract it from their own reading at receipt.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
