/** How a template's text is batched into `job:delta` events. */
export interface DeltaBatcherOptions {
  /** Publishes one batch of text; batches are published one at a time, in order. */
  publish: (text: string) => Promise<void>;
  /** Longest a piece of text waits before it is published. @defaultValue 100 */
  intervalMs?: number;
}

/**
 * Gathers the text a generator writes into batches: a model streams a token every few
 * milliseconds, and one event per token would make Redis and every history carry thousands of
 * events per template. Text is published at most every `intervalMs`, never reordered, never
 * dropped: the batches joined are exactly the text added.
 */
export class DeltaBatcher {
  private readonly publish: (text: string) => Promise<void>;
  private readonly intervalMs: number;
  private pending = '';
  private timer: NodeJS.Timeout | undefined;
  private lastSentAt = 0;
  /** The publishes in flight, chained so that they reach Redis in order. */
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  constructor({ publish, intervalMs = 100 }: DeltaBatcherOptions) {
    this.publish = publish;
    this.intervalMs = intervalMs;
  }

  /** Adds text; it is published within `intervalMs`. */
  add(text: string): void {
    if (text === '') return;
    this.pending += text;
    if (this.timer) return;
    const wait = Math.max(0, this.lastSentAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => this.send(), wait);
  }

  /**
   * Publishes whatever is waiting, and resolves once every batch so far is published. Rejects
   * with the first publish failure, if there was one.
   */
  async flush(): Promise<void> {
    this.send(true);
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }

  /** Drops the timer (text still waiting is not published). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Publishes the waiting text. A batch never ends between the two halves of a character
   * outside the Basic Multilingual Plane (an emoji, say): Redis keeps text as UTF-8, where half a
   * character cannot exist, so the draft would no longer be the deltas joined. The lone half
   * waits for the rest, unless this is the last batch (`all`).
   */
  private send(all = false): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let cut = this.pending.length;
    const last = this.pending.charCodeAt(cut - 1);
    if (!all && last >= 0xd800 && last <= 0xdbff) cut--;
    if (cut === 0) return;
    const text = this.pending.slice(0, cut);
    this.pending = this.pending.slice(cut);
    this.lastSentAt = Date.now();
    this.chain = this.chain.then(() =>
      this.failure === undefined
        ? this.publish(text).catch((err: unknown) => {
            this.failure = err instanceof Error ? err : new Error(String(err));
          })
        : undefined,
    );
  }
}
