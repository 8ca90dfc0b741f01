import { request as httpRequest, Agent, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createEventStreamParser } from '../../src/client/read-event-stream.js';
import { HEARTBEAT_FRAME, TERMINAL_STATUSES, type JobStatus } from '../../src/contract/index.js';
import { serviceEnv, type BenchContext } from '../lib/bench-context.js';
import { fmt, type ScenarioResult } from '../lib/bench-report.js';
import { epochMs, sleep } from '../lib/clock.js';
import { createBenchClient, postJson } from '../lib/http-json.js';
import { startServerProcess } from '../lib/server-process.js';

/** What watching one job to its end cost one way. */
interface WatchCost {
  requests: number;
  /** Bytes on the wire at the HTTP level, both directions (TCP/IP headers not counted). */
  bytes: number;
  /** Response bytes alone. */
  bytesIn: number;
  /** When the watcher learnt that the job had ended (epoch ms). */
  sawEndAt: number;
  status: string;
  /** Response bytes of the last templates list read (polling with text only). */
  lastTemplatesBytes?: number;
}

function get(
  url: string,
  agent: Agent | false,
  onSocket: (socket: Socket) => void,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent }, resolve);
    req.on('socket', onSocket);
    req.on('error', reject);
    req.end();
  });
}

/** One SSE request that stays open until the job's terminal event (the guide's `curl -N`). */
async function watchBySse(mareUrl: string, jobId: string): Promise<WatchCost> {
  let socket: Socket | undefined;
  const res = await get(`${mareUrl}/v1/triton/jobs/${jobId}/subscribe`, false, (s) => (socket = s));
  let status = 'unknown';
  let sawEndAt = 0;
  const parser = createEventStreamParser({
    onEvent: (m) => {
      const s = (JSON.parse(m.data) as { status: string }).status;
      status = s;
      if (!sawEndAt && TERMINAL_STATUSES.has(s as JobStatus)) sawEndAt = epochMs();
    },
  });
  res.setEncoding('utf8');
  for await (const chunk of res) parser.feed(chunk as string);
  return {
    requests: 1,
    bytes: (socket?.bytesRead ?? 0) + (socket?.bytesWritten ?? 0),
    bytesIn: socket?.bytesRead ?? 0,
    sawEndAt,
    status,
  };
}

/**
 * `GET /v1/triton/jobs/{id}` every `intervalMs` until the job has ended (the guide's loop), on a
 * keep-alive connection; `withText` also reads the job's templates each time, as a poller that
 * shows the text must (and even then it sees a template only once it is finished).
 */
async function watchByPolling(
  mareUrl: string,
  jobId: string,
  intervalMs: number,
  withText = false,
): Promise<WatchCost> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<Socket>();
  let requests = 0;
  let status = 'unknown';
  let lastTemplatesBytes = 0;
  const read = async (url: string): Promise<{ code: number; body: string }> => {
    const res = await get(url, agent, (s) => sockets.add(s));
    let body = '';
    res.setEncoding('utf8');
    for await (const chunk of res) body += chunk as string;
    requests++;
    return { code: res.statusCode ?? 0, body };
  };
  try {
    for (;;) {
      const doc = await read(`${mareUrl}/v1/triton/jobs/${jobId}`);
      if (doc.code === 200) status = (JSON.parse(doc.body) as { status: string }).status;
      if (withText) {
        lastTemplatesBytes = Buffer.byteLength(
          (await read(`${mareUrl}/v1/triton/jobs/${jobId}/templates`)).body,
        );
      }
      if (TERMINAL_STATUSES.has(status as JobStatus)) break;
      await sleep(intervalMs);
    }
    const sawEndAt = epochMs();
    let bytes = 0;
    let bytesIn = 0;
    for (const s of sockets) {
      bytes += s.bytesRead + s.bytesWritten;
      bytesIn += s.bytesRead;
    }
    return { requests, bytes, bytesIn, sawEndAt, status, lastTemplatesBytes };
  } finally {
    agent.destroy();
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * 5. Polling vs push (Test 5 of the original system's guide): K real jobs, each watched three ways
 * at once: by one SSE subscription, by polling `GET /v1/triton/jobs/{id}` every 2 s, and by
 * polling the status and `…/templates` (what showing the text by polling takes); requests and
 * bytes counted on the client's sockets. The original system's jobs took 3–5 minutes; the
 * run's jobs are shorter, so the figures are also projected to those lengths from the measured
 * costs.
 */
export async function runPolling(ctx: BenchContext): Promise<ScenarioResult> {
  const { watchJobs, jobSeconds, pollIntervalMs, seedJobSeconds } = ctx.options;
  await ctx.admin.flushall();
  const stepMs = Math.round((jobSeconds * 1000) / 7);
  const server = await startServerProcess(
    {
      kind: 'system',
      env: serviceEnv(ctx, {
        GENERATION_STEP_MS: String(stepMs),
        WORKER_CONCURRENCY: String(watchJobs),
      }),
      mare: true,
    },
    'triton + mare-api',
  );
  const sse: WatchCost[] = [];
  const polls: WatchCost[] = [];
  const textPolls: WatchCost[] = [];
  try {
    const tritonUrl = server.info.tritonUrl ?? '';
    const clientId = await createBenchClient(tritonUrl);
    ctx.log(
      `${watchJobs} jobs of ~${jobSeconds} s, each watched by SSE, by polling its status, and by polling its status and templates`,
    );
    await Promise.all(
      Array.from({ length: watchJobs }, async () => {
        const { job_id: jobId } = await postJson<{ job_id: string }>(
          `${server.url}/v1/triton/clients/${clientId}/generate-templates`,
          {},
          202,
        );
        const [s, p, t] = await Promise.all([
          watchBySse(server.url, jobId),
          watchByPolling(server.url, jobId, pollIntervalMs),
          watchByPolling(server.url, jobId, pollIntervalMs, true),
        ]);
        sse.push(s);
        polls.push(p);
        textPolls.push(t);
      }),
    );
  } finally {
    await server.stop();
  }

  const k = sse.length;
  const perJob = (xs: WatchCost[], f: (w: WatchCost) => number) => sum(xs.map(f)) / k;
  const sseRequests = perJob(sse, (w) => w.requests);
  const pollRequests = perJob(polls, (w) => w.requests);
  const sseBytes = perJob(sse, (w) => w.bytes);
  const pollBytes = perJob(polls, (w) => w.bytes);
  const textPollRequests = perJob(textPolls, (w) => w.requests);
  const textPollBytes = perJob(textPolls, (w) => w.bytes);
  /** The templates list of a finished job, as the last poll read it. */
  const finishedTemplatesBytes = perJob(textPolls, (w) => w.lastTemplatesBytes ?? 0);
  // Polling sees the end up to one interval late; SSE the moment it is published.
  const sseSeesEnd =
    sum(sse.map((s, i) => s.sawEndAt - Math.min(s.sawEndAt, polls[i]?.sawEndAt ?? s.sawEndAt))) / k;
  const pollSeesEnd =
    sum(polls.map((p, i) => p.sawEndAt - Math.min(p.sawEndAt, sse[i]?.sawEndAt ?? p.sawEndAt))) / k;

  // At the original job lengths: polls grow with time, SSE only by a heartbeat every interval.
  const { heartbeatMs } = ctx.options;
  const heartbeatBytes = HEARTBEAT_FRAME.length + HEARTBEAT_FRAME.length.toString(16).length + 4;
  const fewer = (a: number, b: number) => (1 - a / b) * 100;
  // A poll with text reads the status and the templates finished so far, which grow in seven
  // steps to the finished list: on average half of it over the job's length.
  const templatesReadBytes = finishedTemplatesBytes / 2;
  const textPollOverhead = Math.max(
    0,
    (textPollBytes - (textPollRequests / 2) * templatesReadBytes) / (textPollRequests / 2),
  );
  const atSeed = seedJobSeconds.map((seconds) => {
    const polls = Math.floor((seconds * 1000) / pollIntervalMs) + 1;
    return {
      seconds,
      polls,
      pollBytes: (pollBytes / pollRequests) * polls,
      textPollBytes: polls * (textPollOverhead + templatesReadBytes),
      sseBytes: sseBytes + Math.floor((seconds * 1000) / heartbeatMs) * heartbeatBytes,
    };
  });
  const judged = atSeed[0] ?? {
    seconds: 0,
    polls: 1,
    pollBytes: 1,
    textPollBytes: 1,
    sseBytes: 1,
  };
  const range = (f: (a: (typeof atSeed)[number]) => number) =>
    atSeed.map((a) => `${fmt(f(a))}% at ${a.seconds} s`).join(', ');

  const ok = [...sse, ...polls, ...textPolls].every((w) => w.status === 'completed');
  return {
    scenario: 'polling',
    title: 'Polling vs push: watching real jobs to completion',
    columns: ['SSE', 'polling'],
    params: { jobs: watchJobs, jobSeconds, pollIntervalMs, seedJobSeconds },
    rows: [
      { metric: 'requests per job', unit: 'requests', project: sseRequests, bare: pollRequests },
      { metric: 'bytes per job (both ways)', unit: 'bytes', project: sseBytes, bare: pollBytes },
      {
        metric: 'response bytes per job',
        unit: 'bytes',
        project: perJob(sse, (w) => w.bytesIn),
        bare: perJob(polls, (w) => w.bytesIn),
      },
      {
        metric: 'requests per job, polling with text',
        unit: 'requests',
        project: sseRequests,
        bare: textPollRequests,
      },
      {
        metric: 'bytes per job, polling with text',
        unit: 'bytes',
        project: sseBytes,
        bare: textPollBytes,
      },
      {
        metric: 'saw the end after the other way',
        unit: 'ms',
        project: sseSeesEnd,
        bare: pollSeesEnd,
      },
      ...atSeed.flatMap((a) => [
        {
          metric: `requests per job at ${a.seconds} s`,
          unit: 'requests',
          project: 1,
          bare: a.polls,
        },
        {
          metric: `bytes per job at ${a.seconds} s`,
          unit: 'bytes',
          project: a.sseBytes,
          bare: a.pollBytes,
        },
        {
          metric: `bytes per job at ${a.seconds} s, polling with text`,
          unit: 'bytes',
          project: a.sseBytes,
          bare: a.textPollBytes,
        },
      ]),
    ],
    targets: [
      {
        target: `polling: ≥ 99% fewer requests (original job length, ${judged.seconds} s)`,
        met: ok && fewer(1, judged.polls) >= 99,
        figure: `${range((a) => fewer(1, a.polls))}; measured at ${jobSeconds} s: ${fmt(fewer(sseRequests, pollRequests))}%`,
      },
      {
        target: `polling: ≥ 90% fewer bytes than polling that shows the text (original job length, ${judged.seconds} s)`,
        met: ok && fewer(judged.sseBytes, judged.textPollBytes) >= 90,
        figure: `${range((a) => fewer(a.sseBytes, a.textPollBytes))}; measured at ${jobSeconds} s: ${fmt(fewer(sseBytes, textPollBytes))}%; against status-only polling: ${range((a) => fewer(a.sseBytes, a.pollBytes))}`,
      },
    ],
    notes: [
      `bytes are HTTP-level bytes on the client's sockets (headers and bodies, both ways); polling reuses one keep-alive connection per job`,
      `SSE carries each template's text as it is written (job:delta); status-only polling carries no text, so bytes are judged against polling the status and the templates, which shows each template only once it is finished`,
      `at the original lengths (${seedJobSeconds.join(', ')} s): polls = length / ${pollIntervalMs} ms + 1 at the measured bytes per poll; SSE adds a heartbeat every ${heartbeatMs} ms`,
      ...(ok ? [] : ['some jobs did not complete: see details']),
    ],
    details: { sse, polls, textPolls },
  };
}
