import { SseParser, type SseParserHandlers } from '../contract/index.js';

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
 * Reads an SSE response body to its end with the contract's parser, decoding UTF-8 across
 * chunk boundaries. Never throws: it reports how the stream ended.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  handlers: SseParserHandlers,
  { signal, idleTimeoutMs = 45_000 }: ReadEventStreamOptions,
): Promise<EventStreamEnd> {
  const parser = new SseParser(handlers);
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
