/**
 * A minimal request/response protocol over a forked child's IPC channel: the parent sends
 * `{ id, type, ...payload }` and the child answers `{ id, ok, result | error }`.
 */

/** A request as the child receives it. */
export interface IpcRequest {
  id: number;
  type: string;
  [key: string]: unknown;
}

/** The answer to one {@link IpcRequest}. */
export type IpcResponse =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** Handles one request type in a child; its return value is the response's `result`. */
export type IpcHandler = (request: IpcRequest) => unknown;

/**
 * Serves requests in a child process. A `stop` request answers, then calls `onStop` and exits:
 * the parent waits for the exit rather than killing the child.
 */
export function serveIpc(
  handlers: Record<string, IpcHandler>,
  onStop: () => Promise<void> = () => Promise.resolve(),
): void {
  if (!process.send) throw new Error('This file runs as a forked child of bench/run.ts');
  const send = (message: IpcResponse) => process.send?.(message);
  process.on('message', (raw: unknown) => {
    const request = raw as IpcRequest;
    if (request.type === 'stop') {
      void onStop()
        .catch(() => undefined)
        .then(() => {
          send({ id: request.id, ok: true, result: null });
          process.disconnect?.();
          setTimeout(() => process.exit(0), 50).unref();
        });
      return;
    }
    const handler = handlers[request.type];
    if (!handler) {
      send({ id: request.id, ok: false, error: `unknown request ${request.type}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(request))
      .then(
        (result) => send({ id: request.id, ok: true, result: result ?? null }),
        (err: unknown) =>
          send({
            id: request.id,
            ok: false,
            error: err instanceof Error ? err.message : String(err),
          }),
      );
  });
  // The parent died or closed the channel: nothing is left to serve.
  process.on('disconnect', () => {
    void onStop()
      .catch(() => undefined)
      .then(() => process.exit(0));
  });
}
