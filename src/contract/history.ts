import { isUuid } from './ids.js';
import { SnapshotDraft } from './job-status.js';

/**
 * How events are kept in Redis Streams for late and reconnecting subscribers.
 *
 * - Per job (`Keyspace.jobHistoryKey`): entry id `0-{seq}`, fields `e` (the event JSON exactly
 *   as published) and `g` (the id of the same event in the global stream). Reading "everything
 *   after seq N" is `XRANGE key (0-N +`.
 * - Global (`Keyspace.globalHistoryKey`): entry id assigned by Redis, field `e`.
 *
 * - The all-jobs channel carries each event with its global entry id appended as `stream_id`
 *   (`withStreamId`); global entries store the event without it, and readers append their own
 *   entry id, so a replayed event and a live one are the same text.
 *
 * A global SSE event id is `{job_id}:{seq}`: a gateway knows it from the live message alone,
 * and resolving it to a global position is one `XRANGE` on the job's stream (field `g`).
 */
export const HISTORY_FIELD_EVENT = 'e';
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

/** SSE event id of an event in the all-jobs feed. */
export function globalEventId(jobId: string, seq: number): string {
  return `${jobId}:${seq}`;
}

/** Parses an all-jobs feed event id; undefined when malformed. */
export function parseGlobalEventId(id: string): { jobId: string; seq: number } | undefined {
  const colon = id.lastIndexOf(':');
  if (colon !== 36 || !isUuid(id.slice(0, colon))) return undefined;
  const seq = Number(id.slice(colon + 1));
  if (!Number.isSafeInteger(seq) || seq <= 0) return undefined;
  return { jobId: id.slice(0, colon).toLowerCase(), seq };
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
