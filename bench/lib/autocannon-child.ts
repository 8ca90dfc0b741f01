/**
 * Entry of the HTTP load process: runs autocannon against a server from outside its process.
 * Latency is recorded from each response's own timing (autocannon's histogram has 1 ms steps).
 */
import autocannon from 'autocannon';
import { processStatsHandlers } from './bench-child.js';
import { serveIpc } from './ipc.js';
import { LatencyHistogram } from './latency-histogram.js';

/** What one load run measured. */
export interface HttpLoadResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Response bytes per second. */
  bytesPerSecond: number;
}

function run(request: Record<string, unknown>): Promise<HttpLoadResult> {
  const paths = request.paths as string[];
  let next = 0;
  const latency = new LatencyHistogram();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: String(request.url),
        connections: Number(request.connections),
        duration: Number(request.seconds),
        pipelining: 1,
        requests: [
          {
            method: 'GET',
            setupRequest: (req) => ({ ...req, path: paths[next++ % paths.length] ?? '/' }),
          },
        ],
      },
      (err: unknown, result: autocannon.Result) => {
        if (err) {
          reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
          return;
        }
        const requests = result['2xx'] + result.non2xx;
        resolve({
          requests,
          seconds: result.duration,
          requestsPerSecond: requests / result.duration,
          p50: latency.percentile(50),
          p99: latency.percentile(99),
          max: latency.max,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          bytesPerSecond: result.throughput.average,
        });
      },
    );
    instance.on('response', (_client, _status, _bytes, responseTime) =>
      latency.record(responseTime),
    );
  });
}

serveIpc({ ...processStatsHandlers, run: (request) => run(request) });
