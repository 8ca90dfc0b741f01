/**
 * Entry of an SSE load process: holds many SSE connections with raw node:http requests
 * (`agent: false`: one socket each), counts the benchmark events each receives, and records
 * publish→receipt latency of every delivery. Connections opened in `delta` mode read
 * `job:delta` events instead and keep the digest of each template's text (`delta-frames.ts`).
 * The parent sends `open`, `reset`, `report`, `texts`, `close`.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { processStatsHandlers } from './bench-child.js';
import { readBenchMarker } from './bench-events.js';
import { epochMs } from './clock.js';
import {
  digestKey,
  emptyDigest,
  extendDigest,
  readDeltaFrame,
  templateKey,
  type TextDigest,
} from './delta-frames.js';
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
  /** In `delta` mode, what this connection received of each job. */
  deltas: Map<string, DeltaTrack> | undefined;
}

/** What one connection received of one job's deltas. */
interface DeltaTrack {
  /** Highest seq received (kept across `reset`: a merged delta covers the seqs since). */
  lastSeq: number;
  /** Digest of each template's text since the last `reset`, by template index. */
  texts: (TextDigest | undefined)[];
}

/** How a connection reads its stream. */
export type SseLoadMode = 'marker' | 'delta';

/**
 * Per template (`{job_id}:{template_index}`), how many connections ended up with each digest of
 * its text (`delta` mode): the parent compares them with what was published.
 */
export type DeltaTexts = Record<string, Record<string, number>>;

/** What `report` answers; the parent merges the reports of every load process. */
export interface SseLoadReport {
  connections: number;
  open: number;
  /**
   * Frames that carried benchmark events. `received` counts events: in `delta` mode a frame
   * counts as every delta its seq covers (a congested connection is sent merged deltas).
   */
  frames: number;
  /** Delta frames that carried more than one delta (merged). */
  merged: number;
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
let frames = 0;
let merged = 0;
let duplicates = 0;
let bytes = 0;
let endedEarly = 0;
let firstReceiptMs = 0;
let lastReceiptMs = 0;
let closing = false;

function onDeltaChunk(deltas: Map<string, DeltaTrack>, conn: Connection, chunk: string): void {
  const now = epochMs();
  bytes += chunk.length;
  const text = conn.buffer + chunk;
  let start = 0;
  let end = text.indexOf('\n\n');
  while (end >= 0) {
    const frame = readDeltaFrame(text, start, end);
    if (frame) {
      let track = deltas.get(frame.jobId);
      if (!track) deltas.set(frame.jobId, (track = { lastSeq: frame.seq - 1, texts: [] }));
      if (frame.seq <= track.lastSeq) {
        duplicates++;
      } else {
        const covered = frame.seq - track.lastSeq;
        track.lastSeq = frame.seq;
        received += covered;
        frames++;
        if (covered > 1) merged++;
        let digest = track.texts[frame.templateIndex];
        if (!digest) track.texts[frame.templateIndex] = digest = emptyDigest();
        extendDigest(digest, text, frame.textStart, frame.textEnd);
        histogram.record(now - frame.sentAtMs);
        if (firstReceiptMs === 0) firstReceiptMs = now;
        lastReceiptMs = now;
      }
    }
    start = end + 2;
    end = text.indexOf('\n\n', start);
  }
  conn.buffer = text.slice(start);
}

function onChunk(conn: Connection, chunk: string): void {
  if (conn.deltas) {
    onDeltaChunk(conn.deltas, conn, chunk);
    return;
  }
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
        frames++;
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

function openOne(url: URL, path: string, mode: SseLoadMode): Promise<string | undefined> {
  return new Promise((resolve) => {
    const conn: Connection = {
      req: undefined as unknown as ClientRequest,
      res: undefined,
      buffer: '',
      lastN: -1,
      open: false,
      deltas: mode === 'delta' ? new Map() : undefined,
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
      const mode = request.mode === 'delta' ? 'delta' : 'marker';
      const errors = new Map<string, number>();
      let next = 0;
      let opened = 0;
      const lane = async () => {
        while (next < paths.length) {
          const path = paths[next++] ?? '/';
          const error = await openOne(base, path, mode);
          if (error) errors.set(error, (errors.get(error) ?? 0) + 1);
          else opened++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(maxPending, paths.length) }, lane));
      return { opened, errors: Object.fromEntries(errors) };
    },
    reset: () => {
      histogram.reset();
      for (const conn of connections) {
        if (conn.deltas) for (const track of conn.deltas.values()) track.texts = [];
      }
      received = 0;
      frames = 0;
      merged = 0;
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
      frames,
      merged,
      duplicates,
      bytes,
      firstReceiptMs,
      lastReceiptMs,
      histogram: histogram.toJSON(),
    }),
    /** Every connection's text of every template since `reset`, counted by digest. */
    texts: (): DeltaTexts => {
      const texts: DeltaTexts = {};
      for (const conn of connections) {
        if (!conn.deltas) continue;
        for (const [jobId, track] of conn.deltas) {
          track.texts.forEach((digest, index) => {
            if (!digest) return;
            const counts = (texts[templateKey(jobId, index)] ??= {});
            const key = digestKey(digest);
            counts[key] = (counts[key] ?? 0) + 1;
          });
        }
      }
      return texts;
    },
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
