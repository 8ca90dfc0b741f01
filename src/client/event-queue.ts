/**
 * A one-consumer async queue: a watch pushes items as they arrive and `for await` takes them in
 * order. Items wait here until read, so nothing is lost between creating a watch and starting
 * to iterate it.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiter:
    { resolve: (r: IteratorResult<T>) => void; reject: (err: unknown) => void } | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;
  private iterated = false;

  /**
   * @param onReturn - called when the consumer stops early (`break` out of `for await`).
   * @param limit - most items kept unread; beyond it the oldest are dropped, so a watch used
   *   only through callbacks cannot grow without bound. @defaultValue Infinity
   */
  constructor(
    private readonly onReturn: () => void,
    private readonly limit = Number.POSITIVE_INFINITY,
  ) {}

  /** Hands an item to a waiting reader, or keeps it (dropping the oldest past `limit`). */
  push(item: T): void {
    if (this.ended) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
    if (this.items.length > this.limit) this.items.shift();
  }

  /**
   * No more items: the consumer gets what is queued, then the end.
   * @param discard - drop what is queued too (the consumer asked to stop).
   */
  end(discard = false): void {
    if (discard) this.items = [];
    if (this.ended) return;
    this.ended = true;
    this.settleWaiter();
  }

  /** The consumer gets what is queued, then `error` is thrown from the loop. */
  fail(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = { error };
    this.settleWaiter();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    // Two consumers would each see only some of the events: refuse rather than split them.
    if (this.iterated) throw new TypeError('A watch can be iterated only once');
    this.iterated = true;
    return {
      next: () => this.next(),
      return: () => {
        this.end(true);
        this.onReturn();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      return Promise.resolve({ value: this.items.shift() as T, done: false });
    }
    if (this.failure) {
      const { error } = this.failure;
      this.failure = undefined;
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  private settleWaiter(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    this.waiter = undefined;
    if (this.failure) {
      const { error } = this.failure;
      this.failure = undefined;
      waiter.reject(error);
    } else {
      waiter.resolve({ value: undefined, done: true });
    }
  }
}
