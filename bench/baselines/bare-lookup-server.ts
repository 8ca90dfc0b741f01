import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { createKeyspace } from '../../src/contract/index.js';
import type { BareServer } from './bare-sse-headers.js';

export interface BareLookupServerOptions {
  redisUrl: string;
  /** Key prefix of the cached documents (the project's `REDIS_KEY_PREFIX`). @defaultValue '' */
  keyPrefix?: string;
}

const JOB_PATH = /^\/v1\/triton\/jobs\/([^/?]+)(?:\?|$)/;
const NOT_FOUND = JSON.stringify({ error: { code: 'JOB_NOT_FOUND', message: 'not cached' } });

/**
 * `GET /v1/triton/jobs/{job_id}` as one Redis GET of the cached document, written as is: the
 * yardstick for mare-api's cache-first lookup. No validation, routing framework or fallback.
 */
export async function startBareLookupServer({
  redisUrl,
  keyPrefix = '',
}: BareLookupServerOptions): Promise<BareServer> {
  const keyspace = createKeyspace(keyPrefix);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const server = createServer((req, res) => {
    const jobId = JOB_PATH.exec(req.url ?? '/')?.[1];
    if (!jobId) {
      res.writeHead(404).end();
      return;
    }
    redis.get(keyspace.jobResultKey(jobId)).then(
      (json) => {
        const body = json ?? NOT_FOUND;
        res.writeHead(json === null ? 404 : 200, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      },
      () => res.writeHead(503).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      redis.disconnect();
    },
  };
}
