import { isUuid } from './ids.js';
import { STREAM_ID_PATTERN } from './events.js';
import { SnapshotDraft } from './job-status.js';

/**
 * How events are kept in Redis Streams for late and reconnecting subscribers.
 *
 * - Per job (`Keyspace.jobHistoryKey`): entry id `0-{seq}`, fields `e` (the event JSON exactly
 *   as published) and, on a single server, `g` (the id of the same event in the global stream;
 *   on a cluster the job's entry is written before the global one). Reading "everything after
 *   seq N" is `XRANGE key (0-N +`.
 * - Global (`Keyspace.globalHistoryKey`): entry id assigned by Redis, field `e`.
 *
 * - The all-jobs channel carries each event with its global entry id appended as `stream_id`
 *   (`withStreamId`); global entries store the event without it, and readers append their own
 *   entry id, so a replayed event and a live one are the same text.
 *
 * A global SSE event id is `{job_id}:{seq}:{stream_id}`: the event, and its position in the
 * global history, so that resuming after it is one `XRANGE` from that position. The older form
 * `{job_id}:{seq}` is still accepted; it is resolved through the job's history (field `g`).
 */

/** Field of every history entry holding the event's JSON, exactly as published. */
export const HISTORY_FIELD_EVENT = 'e';
/** Field of a job's history entry holding the id of the same event in the global history. */
export const HISTORY_FIELD_GLOBAL_ID = 'g';

/** Stream entry id of a job's event with this `seq`. */
export function jobHistoryEntryId(seq: number): string {
  return `0-${seq}`;
}

/** `seq` of a job-stream entry id, or undefined when the id is not of that form. */
export function seqOfJobHistoryEntryId(id: string): number | undefined {
  if (!id.startsWith('0-')) return undefined;
  const seq = Number(id.slice(2));
  return Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
}

/** Flat `[field, value, …]` list of a stream entry, as Redis returns it. */
export function historyEntryField(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1];
  }
  return undefined;
}

/** SSE event id of an event in the all-jobs feed (without its position when none is known). */
export function globalEventId(jobId: string, seq: number, streamId?: string): string {
  return streamId === undefined ? `${jobId}:${seq}` : `${jobId}:${seq}:${streamId}`;
}

/** An all-jobs feed event id, parsed. */
export interface GlobalEventId {
  jobId: string;
  seq: number;
  /** The event's position in the global history; absent in the older `{job_id}:{seq}` form. */
  streamId?: string;
}

/** Parses an all-jobs feed event id (either form); undefined when malformed. */
export function parseGlobalEventId(id: string): GlobalEventId | undefined {
  if (id.charAt(36) !== ':' || !isUuid(id.slice(0, 36))) return undefined;
  const [seqText = '', streamId, ...extra] = id.slice(37).split(':');
  if (extra.length > 0 || !/^\d{1,16}$/.test(seqText)) return undefined;
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq) || seq <= 0) return undefined;
  const jobId = id.slice(0, 36).toLowerCase();
  if (streamId === undefined) return { jobId, seq };
  return STREAM_ID_PATTERN.test(streamId) ? { jobId, seq, streamId } : undefined;
}

const STREAM_ID_SUFFIX = ',"stream_id":"';

/**
 * An event's JSON with its global position appended: `{…,"seq":3,"stream_id":"1733-0"}`. Text
 * is spliced, never re-encoded; the publish script builds the same text.
 */
export function withStreamId(json: string, streamId: string): string {
  return `${json.slice(0, -1)}${STREAM_ID_SUFFIX}${streamId}"}`;
}

/** An event's JSON without the `stream_id` that `withStreamId` appended (unchanged if none). */
export function withoutStreamId(json: string): string {
  const at = json.lastIndexOf(STREAM_ID_SUFFIX);
  if (at === -1 || !json.endsWith('"}')) return json;
  const id = json.slice(at + STREAM_ID_SUFFIX.length, -2);
  return /^\d+-\d+$/.test(id) ? `${json.slice(0, at)}}` : json;
}

/** Whether `a` is a later stream entry id than `b` (ids compare as `<ms>-<n>` number pairs). */
export function streamIdAfter(a: string, b: string): boolean {
  const [am = '0', an = '0'] = a.split('-');
  const [bm = '0', bn = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  return ms === 0n ? BigInt(an) > BigInt(bn) : ms > 0n;
}

/** What a job's draft hash (`Keyspace.jobDraftKey`) says, as of its last change. */
export interface DraftState {
  /** Templates stored so far: the position of the one being (or next to be) written. */
  templatesDone: number;
  /** The template being written and its text so far; null when no text is written yet. */
  draft: SnapshotDraft | null;
}

/** Decodes a draft hash as Redis returns it (HGETALL); undefined when there is none. */
export function decodeDraftHash(
  fields: Record<string, string> | null | undefined,
): DraftState | undefined {
  const index = Number(fields?.i);
  if (!fields || !Number.isSafeInteger(index) || index < 0) return undefined;
  const parsed = SnapshotDraft.safeParse({
    template_index: index,
    template_kind: fields.k,
    text: fields.t ?? '',
  });
  return {
    templatesDone: index,
    draft: parsed.success && parsed.data.text !== '' ? parsed.data : null,
  };
}
