/**
 * Waits `ms` milliseconds, or throws the signal's reason as soon as it aborts (whereas
 * `timers/promises` rejects with an AbortError of its own), so that a cancelled write fails
 * with the same reason wherever it was.
 */
export async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
  signal.throwIfAborted();
}
