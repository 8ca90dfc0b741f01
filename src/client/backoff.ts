/**
 * Delay before reconnection attempt `failures` (0 after a connection that worked and then
 * dropped): `baseMs` doubled per consecutive failure, capped at `maxMs`, plus up to 25% random
 * jitter so that the watchers of a restarting gateway do not all come back at the same instant.
 */
export function backoffDelay(failures: number, baseMs: number, maxMs: number): number {
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(exponential * (1 + Math.random() * 0.25));
}

/** Resolves after `ms`, or as soon as `signal` aborts (callers check `signal.aborted`). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
