import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { BARE_SSE_HEADERS, type BareServer } from './bare-sse-headers.js';

/** Which streams a bare relay serves (see {@link BareRelayOptions.route}). */
export type BareRoute = 'broadcast' | 'by-job' | 'both';

export interface BareRelayOptions {
  redisUrl: string;
  /** The channel to SUBSCRIBE to (the project's `triton:jobs:all`). */
  channel: string;
  /**
   * `broadcast`: every message to every response (`GET /v1/triton/events`). `by-job`: each
   * message to the responses of `GET /v1/triton/jobs/{job_id}/subscribe` for its `job_id`.
   * `both`: each message to its job's responses and to every `GET /v1/triton/events`.
   */
  route: BareRoute;
  /** @defaultValue 15000 */
  heartbeatMs?: number;
}

const JOB_PATH = /^\/v1\/triton\/jobs\/([^/]+)\/subscribe(?:\?|$)/;

/**
 * The least a relay from Redis Pub/Sub to SSE can do, as the yardstick for mare-api: one
 * SUBSCRIBE, and each message written as is in one `data:` frame to every open node:http
 * response that wants it. No history, ids, validation, metrics or slow-consumer handling.
 */
export async function startBareRelay({
  redisUrl,
  channel,
  route,
  heartbeatMs = 15_000,
}: BareRelayOptions): Promise<BareServer> {
  const everyone = new Set<ServerResponse>();
  const allJobs = new Set<ServerResponse>();
  const byJob = new Map<string, Set<ServerResponse>>();

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    let set: Set<ServerResponse> | undefined;
    if (route !== 'by-job' && url.startsWith('/v1/triton/events')) {
      set = allJobs;
    } else if (route !== 'broadcast') {
      const jobId = JOB_PATH.exec(url)?.[1];
      if (jobId) {
        set = byJob.get(jobId);
        if (!set) byJob.set(jobId, (set = new Set()));
      }
    }
    if (!set) {
      res.writeHead(404).end();
      return;
    }
    const mine = set;
    res.writeHead(200, BARE_SSE_HEADERS);
    res.flushHeaders();
    mine.add(res);
    everyone.add(res);
    res.once('close', () => {
      mine.delete(res);
      everyone.delete(res);
    });
  });

  const subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
  subscriber.on('message', (_channel: string, message: string) => {
    const frame = `data: ${message}\n\n`;
    if (route !== 'broadcast') {
      const { job_id: jobId } = JSON.parse(message) as { job_id: string };
      const watchers = byJob.get(jobId);
      if (watchers) for (const res of watchers) res.write(frame);
    }
    if (route !== 'by-job') for (const res of allJobs) res.write(frame);
  });
  await subscriber.subscribe(channel);

  const heartbeat = setInterval(() => {
    for (const res of everyone) res.write(': heartbeat\n\n');
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
      subscriber.disconnect();
    },
  };
}
