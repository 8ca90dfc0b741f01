import { describe, expect, it } from 'vitest';
import {
  decodeEvent,
  encodeEventDraft,
  EventDecodeError,
  isTerminalEvent,
  isUuid,
  JobStatusDocument,
  NO_USAGE,
  statusDocumentFromTerminalEvent,
  Uuid,
  UuidParam,
  type JobCancelledEvent,
  type JobCompletedEvent,
  type JobEvent,
  type JobFailedEvent,
} from '../../src/contract/index.js';

/** The original system's event examples, with real UUIDs and `seq` added. */
const JOB_ID = '3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f';
const CLIENT_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

const queued = {
  event_type: 'job:queued',
  timestamp: '2024-12-01T09:59:59.500Z',
  job_id: JOB_ID,
  client_id: CLIENT_ID,
  status: 'queued',
  seq: 1,
} as const;

const started = {
  event_type: 'job:started',
  timestamp: '2024-12-01T10:00:00.000Z',
  job_id: JOB_ID,
  client_id: CLIENT_ID,
  status: 'running',
  started_at: '2024-12-01T10:00:00.000Z',
  seq: 2,
} as const;

const progress = {
  event_type: 'job:progress',
  timestamp: '2024-12-01T10:00:30Z',
  job_id: JOB_ID,
  client_id: CLIENT_ID,
  status: 'running',
  progress: 42,
  templates_done: 3,
  templates_total: 7,
  template_id: 't3',
  seq: 3,
} as const;

const completed = {
  event_type: 'job:completed',
  timestamp: '2024-12-01T10:03:30Z',
  job_id: JOB_ID,
  client_id: CLIENT_ID,
  status: 'completed',
  template_ids: ['t1', 't2', 't3', 't4', 't5', 't6', 't7'],
  template_count: 7,
  generation_duration_ms: 210000,
  completed_at: '2024-12-01T10:03:30Z',
  seq: 4,
} as const;

const failed = {
  event_type: 'job:failed',
  timestamp: '2024-12-01T10:02:15Z',
  job_id: JOB_ID,
  client_id: CLIENT_ID,
  status: 'failed',
  error_message: 'Template generation failed: ...',
  generation_duration_ms: 135000,
  completed_at: '2024-12-01T10:02:15+00:00',
  seq: 4,
} as const;

const delta = {
  event_type: 'job:delta',
  timestamp: '2024-12-01T10:00:31Z',
  job_id: JOB_ID,
  client_id: CLIENT_ID,
  status: 'running',
  template_index: 3,
  template_kind: 'call_script',
  delta: 'Hi, this is\nAlex ',
  seq: 4,
} as const;

const cancelled = {
  event_type: 'job:cancelled',
  timestamp: '2024-12-01T10:01:00Z',
  job_id: JOB_ID,
  client_id: CLIENT_ID,
  status: 'cancelled',
  generation_duration_ms: 60000,
  completed_at: '2024-12-01T10:01:00Z',
  template_ids: ['t1', 't2', 't3'],
  template_count: 3,
  seq: 5,
} as const;

const allEvents = [queued, started, progress, delta, completed, failed, cancelled];

function decodeError(json: string): EventDecodeError {
  try {
    decodeEvent(json);
  } catch (err) {
    expect(err).toBeInstanceOf(EventDecodeError);
    return err as EventDecodeError;
  }
  throw new Error(`decodeEvent accepted ${json}`);
}

describe('decodeEvent', () => {
  it.each(allEvents.map((e) => [e.event_type, e] as const))(
    'accepts a %s event with the original fields and seq',
    (_type, event) => {
      expect(decodeEvent(JSON.stringify(event))).toEqual(event);
    },
  );

  it('accepts the nil UUID as a job or client id (the failure drill)', () => {
    const nil = '00000000-0000-0000-0000-000000000000';
    const event = decodeEvent(JSON.stringify({ ...failed, client_id: nil, job_id: nil }));
    expect(event.client_id).toBe(nil);
  });

  it('accepts an empty template_ids list on a completed event', () => {
    const event = decodeEvent(
      JSON.stringify({ ...completed, template_ids: [], template_count: 0 }),
    );
    expect(event).toMatchObject({ template_ids: [] });
  });

  it.each([
    ['an empty string', ''],
    ['truncated JSON', '{"event_type":"job:started"'],
    ['a bare word', 'job:started'],
    ['single-quoted JSON', "{'event_type':'job:queued'}"],
  ])('rejects %s as not JSON', (_what, json) => {
    expect(decodeError(json).message).toBe('message is not JSON');
  });

  it.each([
    ['null', 'null'],
    ['a number', '42'],
    ['a string', '"job:started"'],
    ['an array', JSON.stringify([started])],
  ])('rejects JSON that is %s rather than an object', (_what, json) => {
    expect(decodeError(json).message).toMatch(/^invalid job event: /);
  });

  it('rejects an unknown event_type', () => {
    const err = decodeError(JSON.stringify({ ...started, event_type: 'job:paused' }));
    expect(err.message).toMatch(/event_type/);
  });

  it.each([
    ['seq', { ...started, seq: '2' }],
    ['seq', { ...started, seq: 0 }],
    ['seq', { ...started, seq: 1.5 }],
    ['job_id', { ...started, job_id: 'abc-123-uuid' }],
    ['client_id', { ...started, client_id: 42 }],
    ['timestamp', { ...started, timestamp: 'yesterday' }],
    ['started_at', { ...started, started_at: 1733047200000 }],
    ['status', { ...started, status: 'completed' }],
    ['progress', { ...progress, progress: 101 }],
    ['progress', { ...progress, progress: '42' }],
    ['templates_done', { ...progress, templates_done: -1 }],
    ['template_ids', { ...completed, template_ids: 't1,t2' }],
    ['template_ids.0', { ...completed, template_ids: [1, 2] }],
    ['template_count', { ...completed, template_count: 7.5 }],
    ['generation_duration_ms', { ...failed, generation_duration_ms: null }],
    ['error_message', { ...failed, error_message: { reason: 'x' } }],
    ['template_index', { ...delta, template_index: -1 }],
    ['template_kind', { ...delta, template_kind: 'sonnet' }],
    ['delta', { ...delta, delta: 42 }],
    ['status', { ...delta, status: 'completed' }],
    ['template_ids', { ...cancelled, template_ids: 't1' }],
  ])('rejects a wrong type or value of %s, naming the field', (field, event) => {
    expect(decodeError(JSON.stringify(event)).message).toContain(`${field}:`);
  });

  it.each(
    allEvents.flatMap((event) =>
      Object.keys(event).map((field) => [event.event_type, field, event] as const),
    ),
  )('rejects a %s event without %s', (_type, field, event) => {
    const copy: Record<string, unknown> = { ...event };
    delete copy[field];
    expect(() => decodeEvent(JSON.stringify(copy))).toThrow(EventDecodeError);
  });

  it('decodes what encodeEventDraft wrote once seq is appended, as the publisher does', () => {
    const { seq: _seq, ...draft } = completed;
    const json = encodeEventDraft({ ...draft, template_ids: [...draft.template_ids] });
    expect(json).not.toContain('"seq"');
    expect(decodeEvent(`${json.slice(0, -1)},"seq":4}`)).toEqual(completed);
  });
});

describe('isTerminalEvent', () => {
  it('is true exactly for job:completed, job:failed and job:cancelled', () => {
    const terminal = allEvents
      .filter((e) => isTerminalEvent(e as JobEvent))
      .map((e) => e.event_type);
    expect(terminal).toEqual(['job:completed', 'job:failed', 'job:cancelled']);
  });
});

describe('statusDocumentFromTerminalEvent', () => {
  it('builds a completed document with progress 100 and the template ids in order', () => {
    const doc = statusDocumentFromTerminalEvent(
      decodeEvent(JSON.stringify(completed)) as JobCompletedEvent,
    );
    expect(doc).toEqual({
      job_id: JOB_ID,
      client_id: CLIENT_ID,
      status: 'completed',
      progress: 100,
      template_ids: ['t1', 't2', 't3', 't4', 't5', 't6', 't7'],
      template_count: 7,
      generation_duration_ms: 210000,
      error_message: null,
      completed_at: '2024-12-01T10:03:30Z',
      usage: NO_USAGE,
    });
    expect(JobStatusDocument.parse(doc)).toEqual(doc);
  });

  it('builds a failed document with the error message, no templates and progress null', () => {
    const doc = statusDocumentFromTerminalEvent(
      decodeEvent(JSON.stringify(failed)) as JobFailedEvent,
    );
    expect(doc).toEqual({
      job_id: JOB_ID,
      client_id: CLIENT_ID,
      status: 'failed',
      progress: null,
      template_ids: [],
      template_count: 0,
      generation_duration_ms: 135000,
      error_message: 'Template generation failed: ...',
      completed_at: '2024-12-01T10:02:15+00:00',
      usage: NO_USAGE,
    });
    expect(JobStatusDocument.parse(doc)).toEqual(doc);
  });

  it('keeps the templates a failed job stored before it failed, with their usage', () => {
    const usage = { prompt_tokens: 30, completion_tokens: 90, requests: 2, model_ms: 1500 };
    const doc = statusDocumentFromTerminalEvent(
      decodeEvent(
        JSON.stringify({ ...failed, template_ids: ['t1', 't2'], template_count: 2, usage }),
      ) as JobFailedEvent,
    );
    expect(doc).toMatchObject({
      status: 'failed',
      progress: null,
      template_ids: ['t1', 't2'],
      template_count: 2,
      usage,
    });
  });

  it('builds a cancelled document with the templates kept, no error and progress null', () => {
    const doc = statusDocumentFromTerminalEvent(
      decodeEvent(JSON.stringify(cancelled)) as JobCancelledEvent,
    );
    expect(doc).toEqual({
      job_id: JOB_ID,
      client_id: CLIENT_ID,
      status: 'cancelled',
      progress: null,
      template_ids: ['t1', 't2', 't3'],
      template_count: 3,
      generation_duration_ms: 60000,
      error_message: null,
      completed_at: '2024-12-01T10:01:00Z',
      usage: NO_USAGE,
    });
    expect(JobStatusDocument.parse(doc)).toEqual(doc);
  });

  it('carries no event-only fields (event_type, seq, timestamp) into the document', () => {
    const doc = statusDocumentFromTerminalEvent(completed as unknown as JobCompletedEvent);
    expect(Object.keys(doc)).not.toContain('seq');
    expect(Object.keys(doc)).not.toContain('event_type');
    expect(Object.keys(doc)).not.toContain('timestamp');
  });
});

describe('Uuid and UuidParam', () => {
  it('accepts the nil UUID', () => {
    expect(Uuid.parse('00000000-0000-0000-0000-000000000000')).toBe(
      '00000000-0000-0000-0000-000000000000',
    );
    expect(isUuid('00000000-0000-0000-0000-000000000000')).toBe(true);
  });

  it('accepts upper case as is in a body and normalises it to lower case in a path', () => {
    const upper = '3F2B8C1E-4D5A-4B6C-9E7F-0A1B2C3D4E5F';
    expect(Uuid.parse(upper)).toBe(upper);
    expect(UuidParam.parse(upper)).toBe(JOB_ID);
    expect(isUuid(upper)).toBe(true);
  });

  it.each([
    ['the original examples’ placeholder', 'abc-123-uuid'],
    ['an empty string', ''],
    ['a UUID without dashes', '3f2b8c1e4d5a4b6c9e7f0a1b2c3d4e5f'],
    ['a UUID in braces', '{3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f}'],
    ['a UUID with a trailing newline', `${JOB_ID}\n`],
    ['a UUID with a non-hex letter', '3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5g'],
    ['a UUID one digit short', '3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5'],
  ])('rejects %s', (_what, value) => {
    expect(Uuid.safeParse(value).success).toBe(false);
    expect(UuidParam.safeParse(value).success).toBe(false);
    expect(isUuid(value)).toBe(false);
  });
});
