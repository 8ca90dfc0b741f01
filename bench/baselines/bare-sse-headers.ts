/** The response headers mare-api sends on its SSE routes, so that baselines send the same bytes. */
export const BARE_SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
  'access-control-allow-origin': '*',
} as const;

/** A server a baseline started: its base URL and how to stop it. */
export interface BareServer {
  readonly url: string;
  close(): Promise<void>;
}
