import type { Logger } from './logger.js';

/** How often a {@link RepeatedErrorLog} repeats itself, and how much it remembers. */
export interface RepeatedErrorLogOptions {
  /** The same failure is logged again at most this often. @defaultValue 60000 */
  intervalMs?: number;
  /** Kinds of failure remembered at once; past that the memory starts afresh. @defaultValue 100 */
  maxKinds?: number;
}

/** What a failure is, for telling one repeated from another: its message and what failed. */
function kindOf(msg: string, err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return `${msg}\u0000${text}`;
}

/**
 * Logs failures that repeat while something stays down (a worker retrying Redis every second,
 * a poll failing on each tick, every request finding the cache gone): the first one of a kind
 * at once, then at most one line per interval, with `repeats`, the number left out since the
 * line before. A kind is the log message together with the error's message.
 */
export class RepeatedErrorLog {
  private readonly last = new Map<string, { at: number; repeats: number }>();
  private readonly intervalMs: number;
  private readonly maxKinds: number;

  constructor(
    private readonly logger: Logger,
    { intervalMs = 60_000, maxKinds = 100 }: RepeatedErrorLogOptions = {},
  ) {
    this.intervalMs = intervalMs;
    this.maxKinds = maxKinds;
  }

  /** Logs `err` at warn level under `msg`, unless the same failure was logged within the interval. */
  warn(err: unknown, msg: string, fields: Record<string, unknown> = {}): void {
    this.log('warn', err, msg, fields);
  }

  /** Logs `err` at error level under `msg`, unless the same failure was logged within the interval. */
  error(err: unknown, msg: string, fields: Record<string, unknown> = {}): void {
    this.log('error', err, msg, fields);
  }

  private log(
    level: 'warn' | 'error',
    err: unknown,
    msg: string,
    fields: Record<string, unknown>,
  ): void {
    const kind = kindOf(msg, err);
    const now = Date.now();
    const seen = this.last.get(kind);
    if (seen && now - seen.at < this.intervalMs) {
      seen.repeats++;
      return;
    }
    if (!seen && this.last.size >= this.maxKinds) this.last.clear();
    this.last.set(kind, { at: now, repeats: 0 });
    const repeats = seen?.repeats ?? 0;
    this.logger[level]({ ...fields, err, ...(repeats > 0 ? { repeats } : {}) }, msg);
  }
}
