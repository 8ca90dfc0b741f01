import type { TerminalStatus } from './events.js';
import {
  jobSnapshot,
  type JobStatusDocument,
  type SnapshotDraft,
  type SnapshotTemplate,
} from './job-status.js';

/**
 * Server-Sent Events wire format (WHATWG HTML §9.2), as mare-api writes it; any spec-following
 * parser reads it (the client uses eventsource-parser). docs/contract.md describes it whole.
 * Job events and snapshots carry no `event:` field, so a browser's `EventSource.onmessage` sees
 * every one of them (pages written for the original system listen only there); the all-jobs
 * stream's `resync` is the one named event.
 */

/** Comment written after a job's terminal event, just before the stream closes. */
export function closingComment(status: TerminalStatus): string {
  return `: Connection closing - job ${status}\n\n`;
}

/**
 * The frame of a `job:snapshot` as of `seq`: a job's whole state, sent when the events a
 * subscriber missed cannot be replayed.
 */
export function snapshotFrame(
  doc: JobStatusDocument,
  seq: number,
  text?: { templates: SnapshotTemplate[]; draft: SnapshotDraft | null },
): string {
  return formatSseEvent(seq, JSON.stringify(jobSnapshot(doc, seq, text)));
}

/** The heartbeat comment that keeps idle connections open through proxies. */
export const HEARTBEAT_FRAME = ': heartbeat\n\n';

/**
 * One SSE event frame. `id` must not contain CR or LF (ids here are a job's `seq`, an all-jobs
 * `{job_id}:{seq}:{stream_id}`, or empty); `data` is split into one `data:` line per line of text.
 */
export function formatSseEvent(id: string | number, data: string, event?: string): string {
  const idLine = `id: ${String(id).replace(/[\r\n]/g, '')}\n`;
  const eventLine = event === undefined ? '' : `event: ${event.replace(/[\r\n]/g, '')}\n`;
  const dataLines =
    data.includes('\n') || data.includes('\r')
      ? data
          .split(/\r\n|\r|\n/)
          .map((line) => `data: ${line}\n`)
          .join('')
      : `data: ${data}\n`;
  return `${idLine}${eventLine}${dataLines}\n`;
}

/**
 * Named event on the all-jobs stream telling a reconnecting client that the events it missed
 * are no longer in history: it should reload the state it shows. Live events follow.
 */
export const RESYNC_EVENT = 'resync';

/** The frame of a `resync` event on the all-jobs stream, saying why. */
export function resyncFrame(reason: string): string {
  return formatSseEvent(
    '',
    JSON.stringify({ event_type: 'stream:resync', reason, timestamp: new Date().toISOString() }),
    RESYNC_EVENT,
  );
}

/** The `retry:` field: how long a client waits before reconnecting. */
export function retryFrame(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}
