import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeltaBatcher } from '../../src/triton/worker/delta-batcher.js';

/**
 * The batcher only reads the clock and sets timers, so fake timers drive it exactly: "at most
 * every intervalMs" and "within intervalMs" are checked to the millisecond, without waiting.
 */

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

/** One call of the publish function. */
interface Call {
  text: string;
  /** Fake-clock time the publish started. */
  at: number;
  done: boolean;
}

/**
 * A publish function that records its calls, and can be held (each publish then waits until
 * released), made slow (each takes `delayMs` of fake time) or made to fail on a given text.
 */
class PublishLog {
  readonly calls: Call[] = [];
  inFlight = 0;
  maxInFlight = 0;
  delayMs = 0;
  held = false;
  failOn: { text: string; error: Error } | undefined;
  private readonly waiting: (() => void)[] = [];

  readonly publish = async (text: string): Promise<void> => {
    const call: Call = { text, at: Date.now(), done: false };
    this.calls.push(call);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      if (this.failOn?.text === text) throw this.failOn.error;
    } finally {
      this.inFlight--;
      call.done = true;
    }
  };

  get texts(): string[] {
    return this.calls.map((c) => c.text);
  }

  /** Lets the oldest held publish finish. */
  async releaseOne(): Promise<void> {
    this.waiting.shift()?.();
    await vi.advanceTimersByTimeAsync(0);
  }

  /** Stops holding: every held publish, and every later one, finishes. */
  async releaseAll(): Promise<void> {
    this.held = false;
    for (const resolve of this.waiting.splice(0)) resolve();
    await vi.advanceTimersByTimeAsync(0);
  }
}

const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);

/** A writer's behaviour: text added, with pauses of fake time in between. */
const stepsArb = fc.array(
  fc.oneof(
    fc.record({ add: fc.string({ maxLength: 6 }) }),
    fc.record({ wait: fc.integer({ min: 0, max: 250 }) }),
  ),
  { minLength: 1, maxLength: 40 },
);

describe('DeltaBatcher', () => {
  it('publishes the first text at once, and text added meanwhile as one batch intervalMs after it', async () => {
    const log = new PublishLog();
    const batcher = new DeltaBatcher({ publish: log.publish, intervalMs: 100 });
    batcher.add('Hel');
    batcher.add('lo');
    expect(log.texts, 'nothing is published inside add()').toEqual([]);
    await advance(0);
    expect(log.texts).toEqual(['Hello']);

    batcher.add(', ');
    batcher.add('world');
    await advance(99);
    expect(log.texts).toEqual(['Hello']);
    await advance(1);
    expect(log.texts).toEqual(['Hello', ', world']);
    expect((log.calls[1]?.at ?? 0) - (log.calls[0]?.at ?? 0)).toBe(100);
  });

  it('never reorders or drops text: the batches joined are the text added, each piece published within intervalMs and batches at least intervalMs apart', async () => {
    await fc.assert(
      fc.asyncProperty(stepsArb, fc.integer({ min: 1, max: 120 }), async (steps, intervalMs) => {
        const log = new PublishLog();
        const batcher = new DeltaBatcher({ publish: log.publish, intervalMs });
        let added = '';
        /** For each character added, the fake-clock time it was added. */
        const addedAt: number[] = [];
        for (const step of steps) {
          if ('add' in step) {
            batcher.add(step.add);
            added += step.add;
            for (let i = 0; i < step.add.length; i++) addedAt.push(Date.now());
          } else {
            await advance(step.wait);
          }
        }
        await advance(intervalMs);

        expect(log.texts.join('')).toBe(added);
        expect(
          log.texts.every((t) => t !== ''),
          'no empty batch',
        ).toBe(true);
        let offset = 0;
        for (const [i, call] of log.calls.entries()) {
          const previous = log.calls[i - 1];
          if (previous) expect(call.at - previous.at).toBeGreaterThanOrEqual(intervalMs);
          for (let c = offset; c < offset + call.text.length; c++) {
            expect(call.at - (addedAt[c] ?? 0)).toBeLessThanOrEqual(intervalMs);
          }
          offset += call.text.length;
        }
        batcher.close();
      }),
      { numRuns: 150 },
    );
  });

  it('publishes one batch at a time and in order, however slow publishing is', async () => {
    await fc.assert(
      fc.asyncProperty(stepsArb, fc.integer({ min: 1, max: 500 }), async (steps, delayMs) => {
        const log = new PublishLog();
        log.delayMs = delayMs;
        const batcher = new DeltaBatcher({ publish: log.publish, intervalMs: 50 });
        let added = '';
        for (const step of steps) {
          if ('add' in step) {
            batcher.add(step.add);
            added += step.add;
          } else {
            await advance(step.wait);
          }
        }
        const flushed = batcher.flush();
        await vi.runAllTimersAsync();
        await flushed;

        expect(log.maxInFlight).toBeLessThanOrEqual(1);
        expect(log.calls.every((c) => c.done)).toBe(true);
        expect(log.texts.join('')).toBe(added);
        batcher.close();
      }),
      { numRuns: 100 },
    );
  });

  it('starts the next batch only once the one before it is published', async () => {
    const log = new PublishLog();
    log.held = true;
    const batcher = new DeltaBatcher({ publish: log.publish, intervalMs: 100 });
    batcher.add('a');
    await advance(0);
    batcher.add('b');
    await advance(100);
    batcher.add('c');
    await advance(100);
    expect(log.texts, 'b and c wait behind a').toEqual(['a']);

    await log.releaseOne();
    expect(log.texts).toEqual(['a', 'b']);
    expect(log.inFlight).toBe(1);
    await log.releaseAll();
    expect(log.texts).toEqual(['a', 'b', 'c']);
    expect(log.maxInFlight).toBe(1);
  });

  it('flush publishes the waiting text at once and resolves only when every batch is published', async () => {
    const log = new PublishLog();
    const batcher = new DeltaBatcher({ publish: log.publish, intervalMs: 1000 });
    batcher.add('first');
    await advance(0);
    log.held = true;
    batcher.add(' second');
    let settled = false;
    const flushed = batcher.flush().then(() => (settled = true));
    await advance(0);
    expect(log.texts, 'without waiting for the interval').toEqual(['first', ' second']);
    expect(settled).toBe(false);
    await log.releaseAll();
    await flushed;
    expect(settled).toBe(true);
    expect(vi.getTimerCount(), 'no timer left behind').toBe(0);
  });

  it('flush rejects with the first publish failure, and nothing after the failed batch is published', async () => {
    const log = new PublishLog();
    const failure = new Error('Redis is unavailable');
    log.failOn = { text: 'b', error: failure };
    const batcher = new DeltaBatcher({ publish: log.publish, intervalMs: 100 });
    batcher.add('a');
    await advance(0);
    batcher.add('b');
    await advance(100);
    batcher.add('c');
    await advance(100);
    batcher.add('d');

    await expect(batcher.flush()).rejects.toBe(failure);
    // Text after a lost batch would leave a hole in the template: it is not sent at all.
    expect(log.texts).toEqual(['a', 'b']);
    await expect(batcher.flush(), 'and again on a later flush').rejects.toBe(failure);
  });

  it('close drops the timer: text still waiting is not published', async () => {
    const log = new PublishLog();
    const batcher = new DeltaBatcher({ publish: log.publish, intervalMs: 100 });
    batcher.add('a');
    await advance(0);
    batcher.add('never sent');
    expect(vi.getTimerCount()).toBe(1);
    batcher.close();
    expect(vi.getTimerCount()).toBe(0);
    await advance(1000);
    expect(log.texts).toEqual(['a']);
    batcher.close();
  });

  it('sets no timer for empty text', () => {
    const log = new PublishLog();
    const batcher = new DeltaBatcher({ publish: log.publish });
    batcher.add('');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never ends a batch between the two halves of an emoji, whose text Redis could not keep', async () => {
    const log = new PublishLog();
    const batcher = new DeltaBatcher({ publish: log.publish, intervalMs: 100 });
    const emoji = '\u{1F600}';
    batcher.add(`Hi ${emoji.charAt(0)}`);
    await advance(0);
    expect(log.texts).toEqual(['Hi ']);
    batcher.add(`${emoji.charAt(1)} there`);
    await advance(100);
    expect(log.texts).toEqual(['Hi ', `${emoji} there`]);
    // At the end nothing waits: a lone half, should a generator end on one, is sent as it is.
    batcher.add(emoji.charAt(0));
    await batcher.flush();
    expect(log.texts.join('')).toBe(`Hi ${emoji} there${emoji.charAt(0)}`);
  });
});
