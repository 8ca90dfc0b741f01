import {
  formatSseEvent,
  globalEventId,
  isTerminalEvent,
  withoutStreamId,
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

  constructor(
    readonly event: JobEvent,
    /** The JSON exactly as published on its channel: written as is, never re-encoded. */
    readonly json: string,
  ) {
    this.terminal = isTerminalEvent(event);
    this.coalesceKey =
      event.event_type === 'job:progress'
        ? `progress:${event.job_id}`
        : event.event_type === 'job:delta'
          ? `delta:${event.job_id}:${event.template_index}`
          : undefined;
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
      // Deltas append text: the merged one carries both texts, joined, as of the later seq.
      const merged = { ...b, delta: a.delta + b.delta };
      return new LiveEvent(merged, JSON.stringify(merged));
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
