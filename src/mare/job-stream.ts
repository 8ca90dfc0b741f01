import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { visibleTenant, type Principal } from '../common/api-keys.js';
import {
  closingComment,
  formatSseEvent,
  isTerminalEvent,
  isTerminalStatus,
  retryFrame,
  snapshotFrame,
  type JobStatus,
} from '../contract/index.js';
import type { EventHistory, StoredEvent } from './event-history.js';
import type { JobSnapshots, JobState } from './job-snapshots.js';
import type { LiveEvent } from './live-event.js';
import type { SseHub } from './sse-hub.js';
import {
  SseStream,
  subscribedWithin,
  type SseStreamOptions,
  type SseWriteBatch,
} from './sse-stream.js';

/** What opening a job's stream needs. */
export interface JobStreamContext {
  hub: SseHub;
  history: EventHistory;
  snapshots: JobSnapshots;
  /** Reconnection delay clients are told (`retry:`). */
  retryMs: number;
  streamOptions: SseStreamOptions;
  /** Longest wait for the job's subscription before the request is answered 503. */
  subscribeTimeoutMs: number;
}

/** How a job stream starts, decided from the job's history before anything is written. */
type Opening =
  /** The client has every event of a finished job: 204, and EventSource stops reconnecting. */
  | { kind: 'no-content' }
  /** History has what the client missed: replay it. */
  | { kind: 'replay'; events: StoredEvent[] }
  /** It does not (expired, trimmed, or never there): the job's whole state as of `seq`. */
  | { kind: 'snapshot'; state: JobState; seq: number };

/**
 * `GET /v1/triton/jobs/{id}/subscribe`: one job's events, `id: {seq}`; history first, then live,
 * each event once, in seq order; closes after the terminal event.
 */
export class JobStream extends SseStream {
  constructor(
    res: ServerResponse,
    batch: SseWriteBatch,
    readonly jobId: string,
    /** Highest seq the client has (or will have); nothing at or below it is written again. */
    private lastSeq: number,
    options?: SseStreamOptions,
  ) {
    super(res, batch, options);
  }

  /** Highest seq this client has or is about to be sent. */
  get seq(): number {
    return this.lastSeq;
  }

  /**
   * Sends the job's whole state when its events cannot be replayed (after a lost subscription,
   * history had none of them); ends the stream if the job is finished.
   */
  resync({ doc, text }: JobState, seq: number): void {
    if (this.closed || !this.opened) return;
    this.lastSeq = Math.max(this.lastSeq, seq);
    this.writeOrEnd(snapshotFrame(doc, seq, text), doc.status);
  }

  /**
   * Decides, from history (and triton-api when history has nothing), how the stream starts. With
   * a `principal` (auth on), another tenant's job is treated as one history does not know: the
   * snapshot's lookup, made for the caller, answers `JOB_NOT_FOUND` as it does for no job at all.
   */
  async plan(
    history: EventHistory,
    snapshots: JobSnapshots,
    principal?: Principal,
  ): Promise<Opening> {
    const afterSeq = this.lastSeq;
    const { events, latest, draft, seq } = await history.readJob(this.jobId, afterSeq);
    const tenant = visibleTenant(principal);
    const visible = tenant === undefined || latest?.event.tenant_id === tenant;
    if (visible && events[0]?.event.seq === afterSeq + 1) return { kind: 'replay', events };
    if (visible && latest && latest.event.seq === afterSeq) {
      return isTerminalEvent(latest.event)
        ? { kind: 'no-content' }
        : { kind: 'replay', events: [] };
    }
    // Nothing to replay from: the job is unknown to history (404 unless triton-api knows it), or
    // what the client missed was trimmed or expired. The snapshot is as of the job's last seq
    // (the draft's), not of its newest event in history, which may be gone: later events follow
    // it, earlier ones are in it.
    const state = await snapshots.state(this.jobId, visible ? draft : undefined, principal);
    return { kind: 'snapshot', state, seq };
  }

  /**
   * Opens with the `retry:` line, then the replay (or the snapshot), then the live events that
   * arrived while history was read, each at most once, in `seq` order.
   */
  open(opening: Exclude<Opening, { kind: 'no-content' }>, retryMs: number): void {
    let text = retryFrame(retryMs);
    let status: JobStatus | undefined;
    if (opening.kind === 'snapshot') {
      // The snapshot defines what the client has, whatever it claimed before.
      this.lastSeq = opening.seq;
      text += snapshotFrame(opening.state.doc, opening.seq, opening.state.text);
      status = opening.state.doc.status;
    } else {
      for (const { event, json } of opening.events) {
        if (event.seq <= this.lastSeq) continue;
        text += formatSseEvent(event.seq, json);
        this.lastSeq = event.seq;
        status = event.status;
        if (isTerminalEvent(event)) break;
      }
    }
    if (status !== undefined && isTerminalStatus(status)) {
      // The job is over and `text` ends with its last state: live events that arrived while
      // history was read are in it already (a snapshot may be of a job that ended meanwhile).
      this.openWith('', { live: false });
      this.writeOrEnd(text, status);
    } else {
      this.openWith(text);
    }
  }

  protected accept(live: LiveEvent): boolean {
    if (live.seq <= this.lastSeq) return false;
    this.lastSeq = live.seq;
    return true;
  }

  protected frameOf(live: LiveEvent): string {
    return live.jobFrame;
  }

  protected override afterSend(live: LiveEvent): void {
    if (live.terminal) this.writeOrEnd('', live.event.status);
  }

  /**
   * Writes `text`; after a terminal status, ends the stream with the closing comment instead.
   * The one place that decides when a job stream ends.
   */
  private writeOrEnd(text: string, status: JobStatus): void {
    if (isTerminalStatus(status)) this.end(text + closingComment(status));
    else this.write(text);
  }
}

/**
 * Serves one job's stream on `reply`: registers it and waits until the job's channel is
 * subscribed before reading history (an event published in between would otherwise be lost;
 * the stream buffers live events until it opens and drops the ones history replayed), then
 * answers 204, or opens it.
 */
export async function serveJobStream(
  ctx: JobStreamContext,
  reply: FastifyReply,
  jobId: string,
  afterSeq: number,
  /** Who asks (auth on): another tenant's job is `JOB_NOT_FOUND`. */
  principal?: Principal,
): Promise<FastifyReply> {
  const stream = new JobStream(reply.raw, ctx.hub.batch, jobId, afterSeq, ctx.streamOptions);
  const subscribed = ctx.hub.addJobStream(stream);
  let opening: Opening;
  try {
    await subscribedWithin(subscribed, ctx.subscribeTimeoutMs);
    opening = await stream.plan(ctx.history, ctx.snapshots, principal);
  } catch (err) {
    stream.cancel();
    throw err;
  }
  if (opening.kind === 'no-content') {
    stream.cancel();
    return reply.code(204).send(null);
  }
  reply.hijack();
  stream.open(opening, ctx.retryMs);
  return reply;
}
