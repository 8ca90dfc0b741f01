import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { PartProcess } from '../helpers/part-process.js';
import { freePort } from '../helpers/ports.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import type { EventData as Event } from '../helpers/events.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';

/**
 * What an operator sees: Prometheus metrics that move when work happens, health and readiness,
 * and the original system's log lines (so its troubleshooting greps work), on real separate
 * processes.
 */

let system: TestSystem;
let worker: PartProcess;
let gateway: PartProcess;
let workerUrl: string;
let gatewayUrl: string;

/** Every sample of a Prometheus text exposition, keyed `name{labels}`. */
async function scrape(base: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    // Drop the default `service` label so keys read the same on every service.
    const key = line
      .slice(0, space)
      .replace(/,?service="[^"]*"/, '')
      .replace('{}', '')
      .replace('{,', '{');
    samples.set(key, Number(line.slice(space + 1)));
  }
  return samples;
}

function delta(before: Map<string, number>, after: Map<string, number>, key: string): number {
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}

beforeAll(async () => {
  system = await startSystem({ worker: false });
  const workerPort = await freePort();
  const gatewayPort = await freePort();
  [worker, gateway] = await Promise.all([
    PartProcess.start(
      'src/triton/main-worker.ts',
      {
        REDIS_URL: system.redis.url,
        DATABASE_URL: system.databaseUrl ?? '',
        LOG_LEVEL: 'debug',
        GENERATION_STEP_MS: '100',
        WORKER_METRICS_PORT: String(workerPort),
      },
      // Its health and metrics server starts once the worker runs.
      { ready: /^Server listening/ },
    ),
    PartProcess.start(
      'src/mare/main-api.ts',
      {
        REDIS_URL: system.redis.url,
        TRITON_API_URL: system.tritonUrl,
        MARE_API_PORT: String(gatewayPort),
        LOG_LEVEL: 'debug',
      },
      { ready: /^Server listening/ },
    ),
  ]);
  workerUrl = `http://127.0.0.1:${workerPort}`;
  gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
});

afterAll(async () => {
  await Promise.all([worker?.stop(), gateway?.stop()]);
  await system?.close();
});

describe('metrics, health and logs', () => {
  it(
    'counts a job’s work on the worker and the gateway, and logs the original lines with its job_id',
    { timeout: 60_000 },
    async () => {
      const clientId = await createClientWithProposition(system.tritonUrl);
      const [workerBefore, gatewayBefore] = await Promise.all([
        scrape(workerUrl),
        scrape(gatewayUrl),
      ]);

      // Watching every job from before the submission: each event of the job is written live.
      const all = await openSse(`${gatewayUrl}/v1/triton/events`);
      const job = await http<{ job_id: string }>(
        'POST',
        `${gatewayUrl}/v1/triton/clients/${clientId}/generate-templates`,
      );
      const jobId = job.body.job_id;
      const sse = await openSse(`${gatewayUrl}/v1/triton/jobs/${jobId}/subscribe`);
      const during = await scrape(gatewayUrl);
      expect(during.get('mare_sse_connections{stream="job"}')).toBe(1);
      await sse.ended;
      await waitFor('the completion on the all-jobs stream', () =>
        payloads<Event>(all).some((e) => e.job_id === jobId && e.event_type === 'job:completed'),
      );
      all.close();
      await waitFor(
        'the cached result',
        async () =>
          (await http('GET', `${gatewayUrl}/v1/triton/jobs/${jobId}`)).headers.get('x-cache') ===
          'hit',
      );
      await http('GET', `${gatewayUrl}/v1/triton/jobs/${jobId}`);

      const [workerAfter, gatewayAfter] = await Promise.all([
        scrape(workerUrl),
        scrape(gatewayUrl),
      ]);
      // Worker: 9 events published (started, 7 progress, completed), one job finished.
      expect(
        delta(
          workerBefore,
          workerAfter,
          'triton_events_published_total{event_type="job:completed"}',
        ),
      ).toBe(1);
      expect(
        delta(
          workerBefore,
          workerAfter,
          'triton_events_published_total{event_type="job:progress"}',
        ),
      ).toBe(7);
      expect(
        delta(
          workerBefore,
          workerAfter,
          'triton_event_publish_duration_seconds_count{event_type="job:progress"}',
        ),
      ).toBe(7);
      expect(
        delta(workerBefore, workerAfter, 'triton_jobs_finished_total{outcome="completed"}'),
      ).toBe(1);
      expect(
        delta(workerBefore, workerAfter, 'triton_job_duration_seconds_count{outcome="completed"}'),
      ).toBe(1);
      expect(workerAfter.has('triton_queue_jobs{state="waiting"}')).toBe(true);
      // Gateway: the job's events received by both channels it watched (the job's, for its
      // stream; the all-jobs one, for the all-jobs stream), each lagged and written to its
      // watchers once per channel (however many connections); lookups hit the cache.
      const received = (event: string, channel: string) =>
        delta(
          gatewayBefore,
          gatewayAfter,
          `mare_events_received_total{event_type="${event}",channel="${channel}"}`,
        );
      expect(received('job:progress', 'all')).toBe(7);
      expect(received('job:progress', 'job')).toBe(7);
      expect(received('job:completed', 'job')).toBe(1);
      const publishedCount = [...workerAfter.keys()]
        .filter((k) => k.startsWith('triton_events_published_total{'))
        .reduce((sum, k) => sum + delta(workerBefore, workerAfter, k), 0);
      expect(
        delta(workerBefore, workerAfter, 'triton_events_published_total{event_type="job:delta"}'),
      ).toBeGreaterThan(7);
      const receivedBy = (channel: string) =>
        [...gatewayAfter.keys()]
          .filter((k) => k.startsWith('mare_events_received_total{') && k.includes(channel))
          .reduce((sum, k) => sum + delta(gatewayBefore, gatewayAfter, k), 0);
      // Every event of the job (its deltas and triton-api's job:queued included) came by the
      // all-jobs channel; the job's channel brought those published once its stream watched.
      expect(receivedBy('channel="all"')).toBe(publishedCount + 1);
      const byJobChannel = receivedBy('channel="job"');
      expect(byJobChannel).toBeGreaterThan(0);
      expect(byJobChannel).toBeLessThanOrEqual(publishedCount);
      expect(delta(gatewayBefore, gatewayAfter, 'triton_event_subscriber_lag_seconds_count')).toBe(
        publishedCount + 1 + byJobChannel,
      );
      const delivered = delta(gatewayBefore, gatewayAfter, 'mare_sse_delivery_seconds_count');
      expect(delivered).toBeGreaterThanOrEqual(publishedCount + 1);
      expect(delivered).toBeLessThanOrEqual(publishedCount + 1 + byJobChannel);
      expect(
        delta(gatewayBefore, gatewayAfter, 'mare_cache_lookups_total{result="hit"}'),
      ).toBeGreaterThanOrEqual(2);
      expect(
        delta(
          gatewayBefore,
          gatewayAfter,
          'mare_http_request_duration_seconds_count{method="GET",route="/v1/triton/jobs/:job_id",status_code="200"}',
        ),
      ).toBeGreaterThanOrEqual(2);
      expect(gatewayAfter.get('mare_sse_connections{stream="job"}')).toBe(0);

      // The original system's troubleshooting lines, each with the job's id as a field.
      expect(worker.logs.some((l) => l.msg === 'Event publisher connected to Redis')).toBe(true);
      const published = worker.logs.find(
        (l) => l.msg === `Published event 'job:completed' for job ${jobId}`,
      );
      expect(published?.job_id).toBe(jobId);
      expect(
        gateway.logs.some((l) => l.msg === 'Triton event subscriber started successfully'),
      ).toBe(true);
      const hit = gateway.logs.find((l) => l.msg === `Cache hit for job ${jobId}`);
      expect(hit?.job_id).toBe(jobId);
    },
  );

  it('a separate worker answers /health and /ready (Redis and the database) on its metrics port', async () => {
    const health = await http<{ status: string; service: string }>('GET', `${workerUrl}/health`);
    expect(health.body).toMatchObject({ status: 'ok', service: 'triton-worker' });
    const ready = await http<{ status: string; checks: Record<string, { status: string }> }>(
      'GET',
      `${workerUrl}/ready`,
    );
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ redis: { status: 'ok' }, database: { status: 'ok' } });
    const gatewayReady = await http<{ status: string }>('GET', `${gatewayUrl}/ready`);
    expect(gatewayReady.body.status).toBe('ready');
  });
});

describe('log format', () => {
  it('is human-readable on a terminal and JSON lines otherwise', () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    let shown = '';
    tty.on('data', (c: Buffer) => (shown += c.toString()));
    createLogger({ logLevel: 'info', logFormat: 'auto' }, tty)
      .child({ service: 'mare-api' })
      .info({ job_id: 'j1' }, 'Cache hit for job j1');
    expect(shown).toMatch(/\[mare-api\] Cache hit for job j1/);
    expect(() => JSON.parse(shown) as unknown).toThrow();

    const pipe = new PassThrough();
    let written = '';
    pipe.on('data', (c: Buffer) => (written += c.toString()));
    createLogger({ logLevel: 'info', logFormat: 'auto' }, pipe)
      .child({ service: 'mare-api' })
      .info({ job_id: 'j1' }, 'Cache hit for job j1');
    expect(JSON.parse(written)).toMatchObject({
      service: 'mare-api',
      job_id: 'j1',
      msg: 'Cache hit for job j1',
      level: 30,
    });
  });
});
