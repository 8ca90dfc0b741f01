/**
 * How the `deltas` scenario stamps, reads and checks `job:delta` events.
 *
 * Latency: a delta's `timestamp` is the publisher's clock when it called publish, to the
 * microsecond (`…T12:00:00.123456Z`, still a valid timestamp of the contract), so a client in
 * another process can measure publish→receipt without any field the contract lacks.
 *
 * Text: a client does not keep the text it receives, only a digest of it per job and template:
 * the length and an FNV-1a hash of the delta's characters as they appear inside the JSON
 * string (escapes included), read byte by byte. JSON escaping works character by character, so
 * the digest of two deltas read one after the other equals that of the one delta a congested
 * connection is sent instead (their texts joined): a merge changes nothing, a lost or repeated
 * delta changes the digest.
 */

/** A digest of text: its length (bytes of the escaped UTF-8) and FNV-1a hash. */
export interface TextDigest {
  length: number;
  hash: number;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** The digest of no text. */
export function emptyDigest(): TextDigest {
  return { length: 0, hash: FNV_OFFSET };
}

/** Extends `digest` in place with `text[start, end)`, each char a byte (latin1-decoded UTF-8). */
export function extendDigest(digest: TextDigest, text: string, start = 0, end = text.length): void {
  let hash = digest.hash;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ text.charCodeAt(i), FNV_PRIME) >>> 0;
  digest.hash = hash;
  digest.length += end - start;
}

/** A digest as one comparable string. */
export function digestKey(digest: TextDigest): string {
  return `${digest.length}:${digest.hash.toString(16)}`;
}

/** A delta's text as a client reads it off the wire: JSON-escaped, UTF-8 bytes as latin1 chars. */
export function wireText(delta: string): string {
  return Buffer.from(JSON.stringify(delta).slice(1, -1), 'utf8').toString('latin1');
}

/** Where a job's template is: the key of its text in every report. */
export function templateKey(jobId: string, templateIndex: number): string {
  return `${jobId}:${templateIndex}`;
}

/** `sentAtMs` (epoch ms with a fraction) as an ISO timestamp to the microsecond. */
export function microsecondTimestamp(sentAtMs: number): string {
  const whole = Math.floor(sentAtMs);
  const micros = Math.min(999, Math.floor((sentAtMs - whole) * 1000));
  return `${new Date(whole).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

/** Reads back {@link microsecondTimestamp}; NaN for anything else. */
export function readMicrosecondTimestamp(timestamp: string): number {
  if (timestamp.length !== 27) return NaN;
  return Date.parse(timestamp) + Number(timestamp.slice(23, 26)) / 1000;
}

/** The fields of one `job:delta` frame a client checks, as offsets into the frame's text. */
export interface DeltaFrame {
  jobId: string;
  seq: number;
  templateIndex: number;
  sentAtMs: number;
  /** The delta's escaped text is `text[textStart, textEnd)`. */
  textStart: number;
  textEnd: number;
}

const DELTA = '"delta":"';
const JOB_ID = '"job_id":"';
const SEQ = '"seq":';
const INDEX = '"template_index":';
const TIMESTAMP = '"timestamp":"';

/** The integer at `at` (digits only). */
function intAt(text: string, at: number): number {
  let n = 0;
  for (let i = at; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
  }
  return n;
}

/**
 * Reads the `job:delta` event of the SSE frame `text[start, end)` without parsing its JSON (a
 * client of an all-jobs stream reads thousands a second); undefined when the frame is not one.
 * A field name with its quotes cannot occur inside a JSON string value (every quote there is
 * escaped), so the first match is the field.
 */
export function readDeltaFrame(text: string, start: number, end: number): DeltaFrame | undefined {
  const delta = text.indexOf(DELTA, start);
  if (delta < 0 || delta >= end) return undefined;
  const textStart = delta + DELTA.length;
  let textEnd = text.indexOf('"', textStart);
  for (;;) {
    if (textEnd < 0 || textEnd >= end) return undefined;
    let backslashes = 0;
    while (text.charCodeAt(textEnd - 1 - backslashes) === 92) backslashes++;
    if (backslashes % 2 === 0) break;
    textEnd = text.indexOf('"', textEnd + 1);
  }
  const jobId = text.indexOf(JOB_ID, start);
  const seq = text.indexOf(SEQ, start);
  const index = text.indexOf(INDEX, start);
  const timestamp = text.indexOf(TIMESTAMP, start);
  if (Math.min(jobId, seq, index, timestamp) < 0 || Math.max(jobId, seq, index, timestamp) >= end)
    return undefined;
  const tsStart = timestamp + TIMESTAMP.length;
  const jobStart = jobId + JOB_ID.length;
  return {
    jobId: text.slice(jobStart, text.indexOf('"', jobStart)),
    seq: intAt(text, seq + SEQ.length),
    templateIndex: intAt(text, index + INDEX.length),
    sentAtMs: readMicrosecondTimestamp(text.slice(tsStart, text.indexOf('"', tsStart))),
    textStart,
    textEnd,
  };
}
