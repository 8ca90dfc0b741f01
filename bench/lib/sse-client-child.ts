/**
 * Entry of an SSE load process: holds many SSE connections with raw node:http requests
 * (`agent: false`: one socket each), counts the benchmark events each receives, and records
 * publish→receipt latency of every delivery. The parent sends `open`, `reset`, `report`,
 * `close`.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { processStatsHandlers } from './bench-child.js';
import { readBenchMarker } from './bench-events.js';
import { epochMs } from './clock.js';
import { serveIpc } from './ipc.js';
import { LatencyHistogram, type HistogramData } from './latency-histogram.js';

/** One connection's parse state. */
interface Connection {
  req: ClientRequest;
  res: IncomingMessage | undefined;
  buffer: string;
  /** Highest benchmark counter seen: a lower or equal one is a duplicate (Pub/Sub keeps order). */
  lastN: number;
  open: boolean;
}

/** What `report` answers; the parent merges the reports of every load process. */
export interface SseLoadReport {
  connections: number;
  open: number;
  /** Connections the server ended or cut after they had opened. */
  endedEarly: number;
  received: number;
  duplicates: number;
  bytes: number;
  firstReceiptMs: number;
  lastReceiptMs: number;
  histogram: HistogramData;
}

const connections: Connection[] = [];
const histogram = new LatencyHistogram();
let received = 0;
let duplicates = 0;
let bytes = 0;
let endedEarly = 0;
let firstReceiptMs = 0;
let lastReceiptMs = 0;
let closing = false;

function onChunk(conn: Connection, chunk: string): void {
  const now = epochMs();
  bytes += chunk.length;
  let text = conn.buffer + chunk;
  let end = text.indexOf('\n\n');
  while (end >= 0) {
    const marker = readBenchMarker(text.slice(0, end));
    if (marker) {
      if (marker.n <= conn.lastN) {
        duplicates++;
      } else {
        conn.lastN = marker.n;
        received++;
        histogram.record(now - marker.sentAtMs);
        if (firstReceiptMs === 0) firstReceiptMs = now;
        lastReceiptMs = now;
      }
    }
    text = text.slice(end + 2);
    end = text.indexOf('\n\n');
  }
  conn.buffer = text;
}

function openOne(url: URL, path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const conn: Connection = {
      req: undefined as unknown as ClientRequest,
      res: undefined,
      buffer: '',
      lastN: -1,
      open: false,
    };
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        agent: false,
        headers: { accept: 'text/event-stream' },
      },
      (res) => {
        conn.res = res;
        if (res.statusCode !== 200) {
          res.resume();
          resolve(`HTTP ${res.statusCode}`);
          return;
        }
        conn.open = true;
        connections.push(conn);
        res.setEncoding('latin1');
        res.on('data', (chunk: string) => onChunk(conn, chunk));
        res.on('close', () => {
          if (conn.open && !closing) endedEarly++;
          conn.open = false;
        });
        resolve(undefined);
      },
    );
    conn.req = req;
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!conn.open) resolve(err.code ?? err.message);
      conn.open = false;
    });
    req.end();
  });
}

serveIpc(
  {
    ...processStatsHandlers,
    /** Opens one connection per path, at most `maxPending` connecting at once. */
    open: async (request) => {
      const base = new URL(String(request.baseUrl));
      const paths = request.paths as string[];
      const maxPending = Number(request.maxPending ?? 200);
      const errors = new Map<string, number>();
      let next = 0;
      let opened = 0;
      const lane = async () => {
        while (next < paths.length) {
          const path = paths[next++] ?? '/';
          const error = await openOne(base, path);
          if (error) errors.set(error, (errors.get(error) ?? 0) + 1);
          else opened++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(maxPending, paths.length) }, lane));
      return { opened, errors: Object.fromEntries(errors) };
    },
    reset: () => {
      histogram.reset();
      received = 0;
      duplicates = 0;
      bytes = 0;
      endedEarly = 0;
      firstReceiptMs = 0;
      lastReceiptMs = 0;
      return null;
    },
    report: (): SseLoadReport => ({
      connections: connections.length,
      open: connections.filter((c) => c.open).length,
      endedEarly,
      received,
      duplicates,
      bytes,
      firstReceiptMs,
      lastReceiptMs,
      histogram: histogram.toJSON(),
    }),
    close: () => {
      closing = true;
      for (const conn of connections.splice(0)) {
        conn.open = false;
        conn.req.destroy();
      }
      closing = false;
      return null;
    },
  },
  () => {
    closing = true;
    for (const conn of connections) conn.req.destroy();
    return Promise.resolve();
  },
);
