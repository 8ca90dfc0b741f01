import { createParser } from 'eventsource-parser';

/** One event as the client reads it off an SSE stream. */
export interface SseMessage {
  /** Last event id in effect after this event (the spec's "last event ID buffer"). */
  id: string | undefined;
  /** The `event:` field; `message` when the event has none, as in a browser's EventSource. */
  event: string;
  /** The event's data lines, joined with LF. */
  data: string;
}

/** What reading a stream reports besides events: comments and `retry:` values. */
export interface EventStreamHandlers {
  /** Each dispatched event, in order. */
  onEvent(message: SseMessage): void;
  /** Each comment's text (the heartbeat, the closing comment), without its leading colon. */
  onComment?(text: string): void;
  /** Each `retry:` value: how long the server asks a client to wait before reconnecting. */
  onRetry?(ms: number): void;
}

/** Incremental SSE parsing of text chunks, split anywhere. */
export interface EventStreamParser {
  /** Parses the next piece of the stream, reporting what it completes. */
  feed(text: string): void;
  /** The id a reconnecting client sends as `Last-Event-ID`. */
  readonly lastId: string | undefined;
}

/**
 * An SSE parser: the WHATWG line handling (CRLF, CR or LF, split anywhere; `field: value` with
 * one optional space; an event without data is not dispatched; an `id` with NUL is ignored) is
 * eventsource-parser's, the parser the AI SDKs and Trigger.dev use, which measured 7–10× faster
 * than a hand-written one on mare's streams. Two things it leaves to its caller are done here:
 * the last event id persists from one event to the next, and an unnamed event is a `message`.
 *
 * A leading BOM is the decoder's to strip (`TextDecoder` does): this takes text. Two corners
 * differ from the spec, and mare (which ends lines with LF) produces neither: an `id:` in an
 * event that has no data is dropped with that event, and a line that ends in a CR is reported
 * only once a later line ending arrives (the CR may be half of a CR LF split across chunks).
 */
export function createEventStreamParser(
  handlers: EventStreamHandlers,
  initialLastEventId?: string,
): EventStreamParser {
  let lastId = initialLastEventId;
  const parser = createParser({
    onEvent({ id, event, data }) {
      if (id !== undefined) lastId = id;
      handlers.onEvent({ id: lastId, event: event ?? 'message', data });
    },
    // Without a handler the parser skips comments (heartbeats) without copying their text.
    ...(handlers.onComment ? { onComment: (text: string) => handlers.onComment?.(text) } : {}),
    onRetry: (ms) => handlers.onRetry?.(ms),
  });
  return {
    feed: (text) => parser.feed(text),
    get lastId() {
      return lastId;
    },
  };
}

/** How reading an SSE body ended. */
export type EventStreamEnd =
  /** The server ended the response. */
  | 'ended'
  /** The connection broke mid-stream. */
  | 'failed'
  /** Nothing arrived, not even a heartbeat, for longer than the idle timeout. */
  | 'stalled'
  /** Our own signal stopped it. */
  | 'aborted';

/** True when a response is an SSE stream (and not, say, a proxy's HTML page). */
export function isEventStream(response: Response): boolean {
  const type = response.headers.get('content-type') ?? '';
  return /^text\/event-stream\b/i.test(type) && response.body !== null;
}

/** Options of {@link readEventStream}. */
export interface ReadEventStreamOptions {
  /** Stops reading (the fetch that produced the body should use the same signal). */
  signal: AbortSignal;
  /**
   * Gives up on a connection that has been silent this long. mare-api sends a heartbeat
   * comment every 15 s, so a longer silence means a half-open connection that would otherwise
   * hang forever. 0 disables. @defaultValue 45000
   */
  idleTimeoutMs?: number;
}

/**
 * Reads an SSE response body to its end, decoding UTF-8 across chunk boundaries. Never throws:
 * it reports how the stream ended.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  handlers: EventStreamHandlers,
  { signal, idleTimeoutMs = 45_000 }: ReadEventStreamOptions,
): Promise<EventStreamEnd> {
  const parser = createEventStreamParser(handlers);
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let stalled = false;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const armIdleTimer = () => {
    if (idleTimeoutMs <= 0) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      stalled = true;
      reader.cancel().catch(() => undefined);
    }, idleTimeoutMs);
  };
  // The fetch's own signal errors the body when aborted; cancelling here as well covers bodies
  // that did not come from that fetch.
  const onAbort = () => void reader.cancel().catch(() => undefined);
  signal.addEventListener('abort', onAbort, { once: true });
  armIdleTimer();
  try {
    for (;;) {
      if (signal.aborted) return 'aborted';
      const { done, value } = await reader.read();
      if (done) {
        parser.feed(decoder.decode());
        if (signal.aborted) return 'aborted';
        return stalled ? 'stalled' : 'ended';
      }
      armIdleTimer();
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } catch {
    if (signal.aborted) return 'aborted';
    return stalled ? 'stalled' : 'failed';
  } finally {
    clearTimeout(idleTimer);
    signal.removeEventListener('abort', onAbort);
  }
}
