/** Relative width of one bucket: percentiles are exact to within 1%. */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Values are kept in microseconds; 2000 buckets of 1% reach past 400 s. */
const BUCKETS = 2000;

/** A histogram's contents as plain data, to cross a process boundary and be merged. */
export interface HistogramData {
  /** `[bucket, count]` pairs of the non-empty buckets. */
  buckets: [number, number][];
  count: number;
  sumMs: number;
  minMs: number;
  maxMs: number;
}

/**
 * Latencies in milliseconds, in log-spaced buckets, so that clients in different processes
 * can record every delivery cheaply and the parent can merge them and read exact-to-1%
 * percentiles. Recording is one log and one increment.
 */
export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  private sumMs = 0;
  private minMs = Infinity;
  private maxMs = 0;

  record(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    const us = v * 1000;
    const bucket = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / LOG_GROWTH));
    this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    this.count++;
    this.sumMs += v;
    if (v < this.minMs) this.minMs = v;
    if (v > this.maxMs) this.maxMs = v;
  }

  merge(data: HistogramData): void {
    for (const [bucket, n] of data.buckets) this.counts[bucket] = (this.counts[bucket] ?? 0) + n;
    this.count += data.count;
    this.sumMs += data.sumMs;
    if (data.count > 0) {
      this.minMs = Math.min(this.minMs, data.minMs);
      this.maxMs = Math.max(this.maxMs, data.maxMs);
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumMs = 0;
    this.minMs = Infinity;
    this.maxMs = 0;
  }

  /** The value (ms) at or below which `p` percent of the samples lie; NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) {
        // The bucket's upper bound, clamped to what was actually seen.
        const upper = i === 0 ? 0.001 : GROWTH ** i / 1000;
        return Math.min(Math.max(upper, this.minMs), this.maxMs);
      }
    }
    return this.maxMs;
  }

  get mean(): number {
    return this.count === 0 ? NaN : this.sumMs / this.count;
  }

  get max(): number {
    return this.count === 0 ? NaN : this.maxMs;
  }

  toJSON(): HistogramData {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) {
      const n = this.counts[i] ?? 0;
      if (n > 0) buckets.push([i, n]);
    }
    return {
      buckets,
      count: this.count,
      sumMs: this.sumMs,
      minMs: this.count ? this.minMs : 0,
      maxMs: this.maxMs,
    };
  }
}
