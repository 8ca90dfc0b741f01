import {
  formatSseEvent,
  globalEventId,
  isTerminalEvent,
  withoutStreamId,
  withStreamId,
  type JobEvent,
} from '../contract/index.js';

/**
 * One published event as a gateway fans it out. Its SSE frames are built at most once per
 * process, however many connections receive it.
 */
export class LiveEvent {
  /** Whether the job ends with this event. */
  readonly terminal: boolean;
  /**
   * Consecutive events of a job with the same key may be merged while they wait for a congested
   * connection (its progress: the latest wins; a template's deltas: their text joined);
   * undefined for events that are always sent as they are.
   */
  readonly coalesceKey: string | undefined;
  private jobFrameText: string | undefined;
  private globalFrameText: string | undefined;
  private jsonText: string | undefined;

  /**
   * @param json - the JSON exactly as published on its channel: written as is, never
   *   re-encoded. Omitted only for an event made here by merging, encoded when first written.
   */
  constructor(
    readonly event: JobEvent,
    json?: string,
  ) {
    this.jsonText = json;
    this.terminal = isTerminalEvent(event);
    this.coalesceKey =
      event.event_type === 'job:progress'
        ? `progress:${event.job_id}`
        : event.event_type === 'job:delta'
          ? `delta:${event.job_id}:${event.template_index}`
          : undefined;
  }

  /** The event's JSON: as published, or for a merged event, encoded once when first needed. */
  get json(): string {
    if (this.jsonText === undefined) {
      const { stream_id: streamId, ...rest } = this.event;
      const json = JSON.stringify(rest);
      // The global position goes last, as the publisher appends it, so a job's stream can drop it.
      this.jsonText = streamId === undefined ? json : withStreamId(json, streamId);
    }
    return this.jsonText;
  }

  /** The job's id. */
  get jobId(): string {
    return this.event.job_id;
  }

  /** The event's seq in its job. */
  get seq(): number {
    return this.event.seq;
  }

  /**
   * This event merged with a later one of the same `coalesceKey` that waited behind it: what a
   * connection that could not keep up is sent instead of both.
   */
  mergedWith(later: LiveEvent): LiveEvent {
    const [a, b] = [this.event, later.event];
    if (a.event_type === 'job:delta' && b.event_type === 'job:delta') {
      // Deltas append text: the merged one carries both texts, joined, as of the later seq. While
      // the socket stays congested the next delta merges into this one again: encoding each
      // intermediate would cost time quadratic in the template's length.
      return new LiveEvent({ ...b, delta: a.delta + b.delta });
    }
    // Progress states the job's whole progress: the later one says everything the earlier did.
    return later;
  }

  /** Frame for a job's own stream: `id: {seq}`, the event as its job's history has it. */
  get jobFrame(): string {
    return (this.jobFrameText ??= formatSseEvent(this.event.seq, withoutStreamId(this.json)));
  }

  /** Frame for the all-jobs stream: `id: {job_id}:{seq}:{stream_id}`. */
  get globalFrame(): string {
    return (this.globalFrameText ??= formatSseEvent(
      globalEventId(this.event.job_id, this.event.seq, this.event.stream_id),
      this.json,
    ));
  }
}
