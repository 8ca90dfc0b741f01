import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeEvent, withStreamId, type JobEvent } from '../../src/contract/index.js';
import { LiveEvent } from '../../src/mare/live-event.js';

const clientId = randomUUID();

/** A delta as the gateway receives it on the all-jobs channel: decoded, with its global position. */
function delta(jobId: string, seq: number, text: string, streamId: string): LiveEvent {
  const json = withStreamId(
    JSON.stringify({
      event_type: 'job:delta',
      timestamp: new Date().toISOString(),
      job_id: jobId,
      client_id: clientId,
      status: 'running',
      template_index: 2,
      template_kind: 'landing_page_hero',
      delta: text,
      seq,
    }),
    streamId,
  );
  return new LiveEvent(decodeEvent(json), json);
}

/** The event a frame carries. */
const dataOf = (frame: string) => JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? '') as JobEvent;

describe('LiveEvent.mergedWith', () => {
  it('joins two deltas of a template into one with both texts, as of the later seq', () => {
    const job = randomUUID();
    const merged = delta(job, 7, 'Headline: ', '1-0').mergedWith(
      delta(job, 8, 'Fewer readmissions', '2-0'),
    );
    expect(merged.seq).toBe(8);
    expect(merged.event).toMatchObject({ delta: 'Headline: Fewer readmissions', stream_id: '2-0' });
    expect(merged.coalesceKey).toBe(`delta:${job}:2`);
  });

  it('keeps the global position on the all-jobs frame and out of the job frame, as for any event', () => {
    const job = randomUUID();
    const merged = delta(job, 7, 'a', '1-0').mergedWith(delta(job, 8, 'b', '2-0'));
    expect(dataOf(merged.globalFrame)).toMatchObject({ seq: 8, delta: 'ab', stream_id: '2-0' });
    expect(merged.globalFrame).toMatch(new RegExp(`^id: ${job}:8:2-0\\n`));
    const jobData = dataOf(merged.jobFrame);
    expect(jobData).toMatchObject({ seq: 8, delta: 'ab' });
    expect(jobData).not.toHaveProperty('stream_id');
    expect(merged.jobFrame).toMatch(/^id: 8\n/);
  });
});
