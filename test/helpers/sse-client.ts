import { createEventStreamParser, type SseMessage } from '../../src/client/read-event-stream.js';
import { waitFor } from './wait.js';

/** A test's view of one SSE response: everything it received, as it arrives. */
export interface SseConnection {
  status: number;
  headers: Headers;
  /** Every event, in order. */
  events: SseMessage[];
  /** Every comment line's text, in order (heartbeats, the closing comment). */
  comments: string[];
  /** `retry:` values received. */
  retries: number[];
  /** Resolves when the server ends the response (or the test closes it). */
  ended: Promise<void>;
  /** True once the response ended. */
  readonly isEnded: boolean;
  /** The body as received, for wire-format checks. */
  readonly raw: string;
  /** Waits until `count` events have arrived. */
  waitForEvents(count: number, timeoutMs?: number): Promise<SseMessage[]>;
  /** Aborts the request. */
  close(): void;
}

/** Opens an SSE request with fetch and parses it with the client's parser. */
export async function openSse(
  url: string,
  { lastEventId, headers = {} }: { lastEventId?: string; headers?: Record<string, string> } = {},
): Promise<SseConnection> {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: {
      accept: 'text/event-stream',
      ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
      ...headers,
    },
    signal: controller.signal,
  });
  const events: SseMessage[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  let raw = '';
  let isEnded = false;
  const parser = createEventStreamParser({
    onEvent: (m) => events.push(m),
    onComment: (c) => comments.push(c),
    onRetry: (ms) => retries.push(ms),
  });
  const ended = (async () => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    try {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        raw += text;
        parser.feed(text);
      }
    } catch {
      // Aborted by the test, or the server cut the connection.
    } finally {
      isEnded = true;
    }
  })();
  return {
    status: response.status,
    headers: response.headers,
    events,
    comments,
    retries,
    ended,
    get isEnded() {
      return isEnded;
    },
    get raw() {
      return raw;
    },
    waitForEvents: (count, timeoutMs = 15_000) =>
      waitFor(
        `${count} SSE events (have ${events.length})`,
        () => events.length >= count && events,
        { timeoutMs },
      ),
    close: () => controller.abort(),
  };
}

/** The JSON payloads of a connection's events. */
export function payloads<T = Record<string, unknown>>(connection: { events: SseMessage[] }): T[] {
  return connection.events.map((e) => JSON.parse(e.data) as T);
}
