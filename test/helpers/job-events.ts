import { randomUUID } from 'node:crypto';
import { TEMPLATE_KINDS, type JobEvent } from '../../src/contract/index.js';

const CLIENT_ID = '3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f';
const now = () => new Date().toISOString();

/** Valid job events for unit tests, with the seq given. */
export const jobEvents = {
  queued: (jobId: string, seq: number): JobEvent => ({
    event_type: 'job:queued',
    timestamp: now(),
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'queued',
    seq,
  }),
  started: (jobId: string, seq: number): JobEvent => ({
    event_type: 'job:started',
    timestamp: now(),
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'running',
    started_at: now(),
    seq,
  }),
  progress: (jobId: string, seq: number, done: number): JobEvent => ({
    event_type: 'job:progress',
    timestamp: now(),
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'running',
    progress: Math.floor((done * 100) / 7),
    templates_done: done,
    templates_total: 7,
    template_id: randomUUID(),
    seq,
  }),
  /** Text appended to template `index` (its kind is the index-th of the seven). */
  delta: (jobId: string, seq: number, index: number, delta: string): JobEvent => ({
    event_type: 'job:delta',
    timestamp: now(),
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'running',
    template_index: index,
    template_kind: TEMPLATE_KINDS[index % TEMPLATE_KINDS.length] ?? 'outreach_email',
    delta,
    seq,
  }),
  completed: (jobId: string, seq: number): JobEvent => ({
    event_type: 'job:completed',
    timestamp: now(),
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'completed',
    template_ids: [],
    template_count: 0,
    generation_duration_ms: 5,
    completed_at: now(),
    seq,
  }),
};
