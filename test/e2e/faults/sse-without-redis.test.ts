import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../../src/cli/redis-server.js';
import { ErrorBody } from '../../../src/contract/index.js';
import { PartProcess } from '../../helpers/part-process.js';
import { freePort } from '../../helpers/ports.js';
import { startRedis } from '../../helpers/redis.js';
import { openSse, type SseConnection } from '../../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * The SSE routes at their edges. HEAD on a stream answers the headers a GET would get, with no
 * body, ends at once and holds no connection slot. With Redis down, a stream that needs the
 * job's history cannot start: it is refused with 503 and a Retry-After, as JSON, never 500, and
 * holds no slot either.
 */

let system: TestSystem | undefined;
/** A gateway of its own, on a Redis of its own that the drill kills. */
let gateway: PartProcess | undefined;
let gatewayRedis: RedisServer | undefined;
let finishedJob = '';
const streams: SseConnection[] = [];

beforeAll(async () => {
  system = await startSystem({ env: { SSE_MAX_CONNECTIONS: '1' } });
  const clientId = await createClientWithProposition(system.tritonUrl);
  const res = await http<{ job_id: string }>(
    'POST',
    `${system.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  finishedJob = res.body.job_id;
  const sse = await openSse(`${system.mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`);
  await sse.ended;
});

afterAll(async () => {
  for (const sse of streams) sse.close();
  await gateway?.kill();
  await gatewayRedis?.close();
  await system?.close();
});

/** A HEAD request on a real socket: status, headers, bytes of body, and whether it ended. */
function head(
  url: string,
): Promise<{ status: number; headers: Record<string, unknown>; bodyBytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'HEAD', headers: { accept: 'text/event-stream' } },
      (res) => {
        let bodyBytes = 0;
        res.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
        // 'end' only comes once the answer is complete: a stream held open would never end.
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, bodyBytes }),
        );
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('HEAD did not end within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Open SSE connections as mare-api reports them on /metrics. */
async function openConnections(): Promise<number> {
  const text = (await http<string>('GET', `${system!.mareUrl}/metrics`)).body;
  return text
    .split('\n')
    .filter((line) => line.startsWith('mare_sse_connections{'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

describe('HEAD on a stream route', () => {
  it('answers the stream’s headers only, ends at once, and is never counted as an open connection', async () => {
    const sys = system!;
    // The one slot SSE_MAX_CONNECTIONS allows is taken by a live stream.
    const live = await openSse(`${sys.mareUrl}/v1/triton/events`);
    streams.push(live);
    expect(live.status).toBe(200);
    expect(sys.mare.hub.size).toBe(1);

    const urls = [
      `${sys.mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`,
      `${sys.mareUrl}/v1/triton/jobs/${finishedJob}/subscribe?last_event_id=3`,
      `${sys.mareUrl}/v1/triton/events`,
      `${sys.mareUrl}/v1/triton/events?history=10`,
    ];
    for (let round = 0; round < 10; round++) {
      for (const url of urls) {
        const res = await head(url);
        expect(res.status, url).toBe(200);
        expect(res.headers['content-type'], url).toMatch(/^text\/event-stream/);
        expect(res.headers['cache-control'], url).toMatch(/no-cache/);
        expect(res.bodyBytes, url).toBe(0);
      }
    }
    expect(sys.mare.hub.size).toBe(1);
    expect(await openConnections()).toBe(1);
    // The limit still holds for streams.
    const refused = await http('GET', `${sys.mareUrl}/v1/triton/events`, undefined, {
      accept: 'text/event-stream',
    });
    expect(refused.status).toBe(503);
    expect(ErrorBody.parse(refused.body).error.code).toBe('TOO_MANY_CONNECTIONS');
    live.close();
    await waitFor('the live stream to be let go', () => sys.mare.hub.size === 0);
  });
});

describe('with Redis down', () => {
  it(
    'refuses every stream that needs history with 503 UPSTREAM_UNAVAILABLE and a Retry-After, as JSON, holding no connection',
    { timeout: 60_000 },
    async () => {
      const sys = system!;
      gatewayRedis = await startRedis();
      const port = await freePort();
      gateway = await PartProcess.start(
        'src/mare/main-api.ts',
        {
          REDIS_URL: gatewayRedis.url,
          TRITON_API_URL: sys.tritonUrl,
          MARE_API_PORT: String(port),
          LOG_LEVEL: 'info',
        },
        { ready: /^Server listening at/ },
      );
      const mareUrl = `http://127.0.0.1:${port}`;
      await gatewayRedis.kill();
      await gateway.waitForLog(/^Redis connection "mare-history" failed/);

      const unknownJob = '00000000-0000-4000-8000-000000000000';
      const attempts: Array<[string, Record<string, string>]> = [
        [`/v1/triton/jobs/${finishedJob}/subscribe`, {}],
        [`/v1/triton/jobs/${finishedJob}/subscribe`, { 'last-event-id': '2' }],
        [`/v1/triton/jobs/${unknownJob}/subscribe`, {}],
        ['/v1/triton/events?history=5', {}],
        ['/v1/triton/events', { 'last-event-id': `${finishedJob}:2` }],
      ];
      for (const [path, headers] of attempts) {
        const res = await http('GET', `${mareUrl}${path}`, undefined, {
          accept: 'text/event-stream',
          ...headers,
        });
        const what = `${path} ${JSON.stringify(headers)} → ${res.status} ${JSON.stringify(res.body)}`;
        expect(res.status, what).toBe(503);
        expect(res.headers.get('content-type'), what).toMatch(/^application\/json/);
        expect(ErrorBody.parse(res.body).error.code, what).toBe('UPSTREAM_UNAVAILABLE');
        expect(Number(res.headers.get('retry-after')), what).toBeGreaterThanOrEqual(1);
      }
      const metrics = (await http<string>('GET', `${mareUrl}/metrics`)).body;
      const open = metrics
        .split('\n')
        .filter((line) => line.startsWith('mare_sse_connections{'))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
      expect(open).toBe(0);
      expect(gateway.running).toBe(true);
      expect(gateway.logs.filter((l) => l.level >= 50)).toEqual([]);
    },
  );
});
