import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BARE_SSE_HEADERS, type BareServer } from './bare-sse-headers.js';

export interface BareSseServerOptions {
  /** @defaultValue 15000 */
  heartbeatMs?: number;
}

/**
 * A node:http SSE server that holds connections open and nothing else: the yardstick for
 * the memory one idle connection costs. One set of responses and one shared heartbeat timer.
 */
export async function startBareSseServer({
  heartbeatMs = 15_000,
}: BareSseServerOptions = {}): Promise<BareServer> {
  const open = new Set<ServerResponse>();
  const server = createServer((_req, res) => {
    res.writeHead(200, BARE_SSE_HEADERS);
    res.flushHeaders();
    open.add(res);
    res.once('close', () => open.delete(res));
  });
  const heartbeat = setInterval(() => {
    for (const res of open) res.write(': heartbeat\n\n');
  }, heartbeatMs);
  heartbeat.unref();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      clearInterval(heartbeat);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
