import { expect } from 'vitest';

/**
 * A job event as a test reads it off the wire (SSE `data:` or a Pub/Sub message): the fields
 * tests look at, typed loosely, since checking the payload's shape is the contract tests' job.
 */
export type EventData = Record<string, unknown> & {
  event_type: string;
  seq: number;
  job_id: string;
  status: string;
  progress?: number;
  error_message?: string;
};

/** The event types of a job that ran to completion, its `job:delta`s left out. */
export const COMPLETED_LIFECYCLE: readonly string[] = [
  'job:queued',
  'job:started',
  ...Array<string>(7).fill('job:progress'),
  'job:completed',
];

/** A job's events without its `job:delta`s (the text as it is written): its lifecycle. */
export function withoutDeltas<T extends { event_type: string }>(events: readonly T[]): T[] {
  return events.filter((e) => e.event_type !== 'job:delta');
}

/** The integers from `first` to `last`, both included. */
export function seqRange(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
}

/**
 * Each template's text, joined from a job's `job:delta` events in the order given (index →
 * text). Deltas of a template joined in seq order are exactly its stored body.
 */
export function textsFromDeltas(events: readonly EventData[]): Map<number, string> {
  const texts = new Map<number, string>();
  for (const e of events) {
    if (e.event_type !== 'job:delta') continue;
    const index = e.template_index as number;
    texts.set(index, (texts.get(index) ?? '') + (e.delta as string));
  }
  return texts;
}

/**
 * The seqs of one job's events as a watcher received them: every seq from `first` to the last
 * one, each once and in order, the last being the job's terminal event.
 */
export function expectWholeRun(
  events: readonly EventData[],
  { first = 1, terminal = 'job:completed' }: { first?: number; terminal?: string } = {},
): void {
  const seqs = events.map((e) => e.seq);
  expect(seqs, 'every seq once, in order').toEqual(seqRange(first, seqs.at(-1) ?? first));
  expect(events.at(-1)?.event_type).toBe(terminal);
}
