import type { FastifyReply } from 'fastify';
import {
  formatSseEvent,
  globalEventId,
  resyncFrame,
  retryFrame,
  streamIdAfter,
  type GlobalEventId,
} from '../contract/index.js';
import type { EventHistory, StoredEvent } from './event-history.js';
import type { LiveEvent } from './live-event.js';
import type { SseHub } from './sse-hub.js';
import {
  SseStream,
  subscribedWithin,
  type SseStreamOptions,
  type SseWriteBatch,
} from './sse-stream.js';
import type { ServerResponse } from 'node:http';

/** What opening an all-jobs stream needs. */
export interface AllJobsStreamContext {
  hub: SseHub;
  history: EventHistory;
  /** Reconnection delay clients are told (`retry:`). */
  retryMs: number;
  streamOptions: SseStreamOptions;
  /** Longest wait for the subscription before the request is answered 503. */
  subscribeTimeoutMs: number;
}

/** Where an all-jobs stream starts. */
export type AllJobsStart =
  /** Right after this event (a reconnecting client's Last-Event-ID). */
  | { after: GlobalEventId }
  /** With this many of the newest events (0: live only). */
  | { recent: number };

/**
 * `GET /v1/triton/events`: every job, `id: {job_id}:{seq}:{stream_id}`, never closes by itself.
 * A tenant's stream (auth on) carries that tenant's jobs alone, replay and live alike.
 */
export class AllJobsStream extends SseStream {
  /**
   * Per job, the last seq that history replayed: a live event can repeat one of them until the
   * live events have passed the replay's end. A live event is no proof that the replay lacks it:
   * it may have been published before the replay was read yet arrive after (on a cluster,
   * `triton:jobs:all` reaches the subscriber's node over the cluster bus).
   */
  private replayed: Map<string, number> | undefined;
  /** Global position of the last replayed event. */
  private replayEnd: string | undefined;

  constructor(
    res: ServerResponse,
    batch: SseWriteBatch,
    options?: SseStreamOptions,
    /** Only this tenant's jobs; undefined: every job (an admin, or auth off). */
    private readonly tenant?: string,
  ) {
    super(res, batch, options);
  }

  /**
   * Opens with the `retry:` line, then `replay` (or, when what the client missed is no longer in
   * history, a `resync` event telling it to reload), then the live events that arrived
   * meanwhile and were not replayed.
   */
  open(replay: readonly StoredEvent[] | undefined, retryMs: number): void {
    let text = retryFrame(retryMs);
    const replayed = new Map<string, number>();
    if (replay === undefined) text += resyncFrame('history_unavailable');
    for (const { event, json } of replay ?? []) {
      if (this.tenant !== undefined && event.tenant_id !== this.tenant) continue;
      text += formatSseEvent(globalEventId(event.job_id, event.seq, event.stream_id), json);
      if (event.seq > (replayed.get(event.job_id) ?? 0)) replayed.set(event.job_id, event.seq);
      this.replayEnd = event.stream_id;
    }
    if (replayed.size > 0) this.replayed = replayed;
    this.openWith(text);
  }

  protected accept(live: LiveEvent): boolean {
    if (this.tenant !== undefined && live.event.tenant_id !== this.tenant) return false;
    if (!this.replayed) return true;
    const position = live.event.stream_id;
    if (position !== undefined && this.replayEnd !== undefined) {
      // The channel delivers in the global history's order: past the end, no repeat can follow.
      if (streamIdAfter(position, this.replayEnd)) {
        this.replayed = undefined;
        return true;
      }
    }
    const replayed = this.replayed.get(live.jobId);
    return replayed === undefined || live.seq > replayed;
  }

  protected frameOf(live: LiveEvent): string {
    return live.globalFrame;
  }
}

/** Where the replay after a Last-Event-ID starts: its position, or its job's history says. */
function replayAfter(history: EventHistory, { jobId, seq, streamId }: GlobalEventId) {
  return streamId === undefined
    ? history.readGlobalAfter(jobId, seq)
    : history.readGlobalAfterAnchor(streamId);
}

/**
 * Serves the all-jobs stream on `reply`: registers it and waits until every job's events flow
 * before reading history (so nothing published meanwhile is lost), then opens it with what
 * history has from `start`.
 */
export async function serveAllJobsStream(
  ctx: AllJobsStreamContext,
  reply: FastifyReply,
  start: AllJobsStart,
  /** Only this tenant's jobs (auth on, a tenant's key or token); undefined: every job. */
  tenant?: string,
): Promise<FastifyReply> {
  const stream = new AllJobsStream(reply.raw, ctx.hub.batch, ctx.streamOptions, tenant);
  const subscribed = ctx.hub.addAllJobsStream(stream);
  let replay: StoredEvent[] | undefined;
  try {
    await subscribedWithin(subscribed, ctx.subscribeTimeoutMs);
    replay =
      'after' in start
        ? await replayAfter(ctx.history, start.after)
        : await ctx.history.readGlobalRecent(start.recent);
  } catch (err) {
    stream.cancel();
    throw err;
  }
  reply.hijack();
  stream.open(replay, ctx.retryMs);
  return reply;
}
