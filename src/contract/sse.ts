import type { TerminalStatus } from './events.js';
import {
  jobSnapshot,
  type JobStatusDocument,
  type SnapshotDraft,
  type SnapshotTemplate,
} from './job-status.js';

/**
 * Server-Sent Events wire format (WHATWG HTML §9.2), as mare-api writes it and clients read it.
 * Events carry no `event:` field, so a browser's `EventSource.onmessage` sees every one of them,
 * as the seed's page expects.
 */

/** Comment written after a job's terminal event, just before the stream closes. */
export function closingComment(status: TerminalStatus): string {
  return `: Connection closing - job ${status}\n\n`;
}

/**
 * The frame of a `job:snapshot` as of `seq`: a job's whole state, sent when the events a
 * subscriber missed cannot be replayed.
 */
export function snapshotFrame(
  doc: JobStatusDocument,
  seq: number,
  text?: { templates: SnapshotTemplate[]; draft: SnapshotDraft | null },
): string {
  return formatSseEvent(seq, JSON.stringify(jobSnapshot(doc, seq, text)));
}

/** The heartbeat comment that keeps idle connections open through proxies. */
export const HEARTBEAT_FRAME = ': heartbeat\n\n';

/**
 * One SSE event frame. `id` must not contain CR or LF (ids here are numbers and
 * `{uuid}:{seq}`); `data` is split into one `data:` line per line of text.
 */
export function formatSseEvent(id: string | number, data: string, event?: string): string {
  const idLine = `id: ${String(id).replace(/[\r\n]/g, '')}\n`;
  const eventLine = event === undefined ? '' : `event: ${event.replace(/[\r\n]/g, '')}\n`;
  const dataLines =
    data.includes('\n') || data.includes('\r')
      ? data
          .split(/\r\n|\r|\n/)
          .map((line) => `data: ${line}\n`)
          .join('')
      : `data: ${data}\n`;
  return `${idLine}${eventLine}${dataLines}\n`;
}

/** One event as a client's parser dispatches it. */
export interface SseMessage {
  /** Last event id in effect after this event (the spec's "last event ID buffer"). */
  id: string | undefined;
  event: string;
  data: string;
}

/** What the parser reports besides events: comments and `retry:` values. */
export interface SseParserHandlers {
  onEvent(message: SseMessage): void;
  onComment?(text: string): void;
  onRetry?(ms: number): void;
}

/**
 * Incremental SSE parser: feed it text chunks as they arrive, in any split. It follows the
 * spec's line handling (CRLF, CR or LF; BOM; `field: value` with one optional space; an
 * event without data is not dispatched; an `id` with NUL is ignored).
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private eventType = '';
  private lastEventId: string | undefined;
  private sawBom = false;
  private pendingCr = false;

  constructor(
    private readonly handlers: SseParserHandlers,
    initialLastEventId?: string,
  ) {
    this.lastEventId = initialLastEventId;
  }

  /** The id a reconnecting client sends as `Last-Event-ID`. */
  get lastId(): string | undefined {
    return this.lastEventId;
  }

  feed(chunk: string): void {
    let text = chunk;
    // An empty chunk (a TextDecoder holding back part of a character, a zero-length read)
    // must not clear `pendingCr`, or the LF of a CR LF split around it ends a second line.
    if (text.length === 0) return;
    if (!this.sawBom) {
      this.sawBom = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // A CR at the end of the previous chunk already ended a line; a following LF belongs to it.
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buffer.slice(start, i));
      if (c === 13) {
        if (i + 1 < this.buffer.length) {
          if (this.buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) {
      this.handlers.onComment?.(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\u0000')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
        break;
      default:
        break;
    }
  }

  private dispatch(): void {
    if (this.data.length === 0) {
      this.eventType = '';
      return;
    }
    const message: SseMessage = {
      id: this.lastEventId,
      event: this.eventType || 'message',
      data: this.data.join('\n'),
    };
    this.data = [];
    this.eventType = '';
    this.handlers.onEvent(message);
  }
}

/**
 * Named event on the all-jobs stream telling a reconnecting client that the events it missed
 * are no longer in history: it should reload the state it shows. Live events follow.
 */
export const RESYNC_EVENT = 'resync';

/** The frame of a `resync` event on the all-jobs stream, saying why. */
export function resyncFrame(reason: string): string {
  return formatSseEvent(
    '',
    JSON.stringify({ event_type: 'stream:resync', reason, timestamp: new Date().toISOString() }),
    RESYNC_EVENT,
  );
}

/** The `retry:` field: how long a client waits before reconnecting. */
export function retryFrame(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}
