import { randomBytes, randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { createLogger } from '../../src/common/logger.js';
import { closeRedis, createRedis, type Redis } from '../../src/common/redis.js';
import {
  createKeyspace,
  decodeEvent,
  historyEntryField,
  type Keyspace,
  type TemplateKind,
} from '../../src/contract/index.js';
import { submitGeneration } from '../../src/triton/api/submit-generation.js';
import { openDatabase, type TritonDatabase } from '../../src/triton/db/database.js';
import { TritonStore } from '../../src/triton/db/triton-store.js';
import { EventPublisher } from '../../src/triton/events/event-publisher.js';
import {
  createGenerationQueue,
  type GenerationJobData,
  type GenerationQueue,
} from '../../src/triton/generation-queue.js';
import { requestCancellation } from '../../src/triton/job-cancellation.js';
import { timeoutMessage } from '../../src/triton/job-failure.js';
import { abortableSleep } from '../../src/triton/worker/abortable-sleep.js';
import { CancellationWatcher, JobCancelled } from '../../src/triton/worker/cancellation-watcher.js';
import { GenerationError } from '../../src/triton/worker/generation-error.js';
import {
  createGenerationProcessor,
  type GenerationResult,
} from '../../src/triton/worker/generation-processor.js';
import type {
  GenerationInput,
  TemplateGenerator,
  WriteTemplateRequest,
  WrittenTemplate,
} from '../../src/triton/worker/template-generator.js';
import { withoutDeltas, type EventData, textsFromDeltas, seqRange } from '../helpers/events.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The processor run directly on jobs fetched back from a real BullMQ queue, with a real store
 * (the run's Postgres), a real publisher and cancellation watcher on a real redis-server, and a
 * scripted generator. Each test has its own key prefix, queue and clients.
 */

const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
let server: RedisServer;
let redis: Redis;
let database: TritonDatabase;
let dropDatabase: () => Promise<void>;
let store: TritonStore;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = createRedis(server.url, { name: 'test', logger, maxRetriesPerRequest: null });
  const created = await createTestDatabase();
  dropDatabase = created.drop;
  database = await openDatabase({ databaseUrl: created.url }, logger);
  store = new TritonStore(database.db);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await database?.close();
  await dropDatabase?.();
  if (redis) await closeRedis(redis);
  await server?.close();
});

/** The text a scripted generator writes for a template: several lines, some of them not ASCII. */
function bodyOf(kind: TemplateKind, input: GenerationInput): string {
  return [
    `${kind} for ${input.clientName} (${input.industry})`,
    '',
    `Hi {{first_name}}, ${input.valueProposition}.`,
    'Ünïcødé, “quotes” and emoji 🚀 survive the trip.',
    'Best regards,',
    '{{sender_name}}',
  ].join('\n');
}

/** Called while writing a template; may wait, or throw to fail the write. */
type Hook = (request: WriteTemplateRequest, writtenSoFar: string) => Promise<void>;

/**
 * Writes `bodyOf` each template in word-sized pieces, a millisecond apart, continuing after the
 * prefix it is given. A test scripts what happens at the start of a position, or half-way
 * through it (once each).
 */
class ScriptedGenerator implements TemplateGenerator {
  readonly kinds: readonly TemplateKind[] = ['outreach_email', 'linkedin_post', 'call_script'];
  readonly name = 'scripted';
  /** Every write asked of it: the position and the prefix it was given. */
  readonly requests: { position: number; prefix: string }[] = [];
  readonly atStart = new Map<number, Hook>();
  readonly midway = new Map<number, Hook>();

  async write(request: WriteTemplateRequest): Promise<WrittenTemplate> {
    const { kind, position, input, prefix, signal } = request;
    this.requests.push({ position, prefix });
    const body = bodyOf(kind, input);
    if (!body.startsWith(prefix)) throw new Error(`prefix ${JSON.stringify(prefix)} is not ours`);
    const pieces = body.slice(prefix.length).match(/\s*\S+/g) ?? [];
    const half = Math.floor(pieces.length / 2);
    let written = prefix;
    const first = this.atStart.get(position);
    this.atStart.delete(position);
    await first?.(request, written);
    for (const [i, piece] of pieces.entries()) {
      const hook = this.midway.get(position);
      if (i === half && hook) {
        this.midway.delete(position);
        await hook(request, written);
      }
      await abortableSleep(1, signal);
      request.onText(piece);
      written += piece;
    }
    return {
      title: `${kind} title`,
      usage: { prompt_tokens: 10, completion_tokens: pieces.length },
      requests: 1,
      model_ms: 3,
    };
  }
}

/** Waits until the signal aborts, then fails with its reason, as a stuck model request does. */
function hangUntilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}

interface Harness {
  keyspace: Keyspace;
  queue: GenerationQueue;
  publisher: EventPublisher;
  generator: ScriptedGenerator;
  process: (job: Job<GenerationJobData>) => Promise<GenerationResult>;
  /** Submits a job as triton-api does (`job:queued`, then the queue) and fetches it back. */
  submit: (clientId: string) => Promise<Job<GenerationJobData>>;
  /** The job's events as its history holds them, in seq order. */
  events: (jobId: string) => Promise<EventData[]>;
}

async function harness({
  attempts = 3,
  timeoutMs,
}: { attempts?: number; timeoutMs?: number } = {}): Promise<Harness> {
  const keyspace = createKeyspace(`test-${randomBytes(4).toString('hex')}:`);
  const queue = createGenerationQueue({ connection: redis, keyspace, attempts });
  const publisher = new EventPublisher({ redis, keyspace, logger });
  const cancellations = new CancellationWatcher({
    target: { url: server.url, cluster: false },
    redis,
    keyspace,
    logger,
  });
  await cancellations.start();
  cleanups.push(
    () => cancellations.close(),
    () => queue.close(),
  );
  const generator = new ScriptedGenerator();
  const process = createGenerationProcessor({
    store,
    publisher,
    generator,
    cancellations,
    logger,
    deltaIntervalMs: 5,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  return {
    keyspace,
    queue,
    publisher,
    generator,
    process: (job) => process(job),
    async submit(clientId) {
      const { job_id } = await submitGeneration({ store, queue, publisher, logger }, clientId);
      const job = await queue.getJob(job_id);
      if (!job) throw new Error(`job ${job_id} is not in the queue`);
      return job;
    },
    async events(jobId) {
      const entries = await redis.xrange(keyspace.jobHistoryKey(jobId), '-', '+');
      return entries.map(
        ([, fields]) => decodeEvent(historyEntryField(fields, 'e') ?? '') as EventData,
      );
    },
  };
}

const CLIENT = {
  industry: 'Healthcare',
  proposition: 'We reduce hospital readmissions by 30% through AI-powered care coordination',
};

/** A client with an active value proposition; returns its id and what the generator is given. */
async function clientWithProposition(): Promise<{ clientId: string; input: GenerationInput }> {
  const name = `Client ${randomBytes(3).toString('hex')}`;
  const client = await store.createClient({ name, industry: CLIENT.industry });
  await store.createValueProposition(client.id, { content: CLIENT.proposition, is_active: true });
  return {
    clientId: client.id,
    input: { clientName: name, industry: CLIENT.industry, valueProposition: CLIENT.proposition },
  };
}

const types = (events: readonly { event_type: string }[]) => events.map((e) => e.event_type);

/** Expects each template's deltas, joined in seq order, to be exactly its stored body. */
async function expectDeltasAreBodies(jobId: string, events: EventData[]): Promise<void> {
  const templates = await store.listJobTemplates(jobId);
  const texts = textsFromDeltas(events);
  expect([...texts.keys()].sort()).toEqual(templates.map((t) => t.position));
  for (const t of templates) expect(texts.get(t.position), t.kind).toBe(t.body);
}

/** Waits until the job's published draft is this text of template `index`. */
function draftPublished(h: Harness, jobId: string, index: number, text: string): Promise<true> {
  return waitFor(`the draft of template ${index} to be published`, async () => {
    const draft = await h.publisher.draft(jobId);
    return draft?.template_index === index && draft.text === text;
  });
}

describe('createGenerationProcessor', () => {
  it("publishes started, each template's text as deltas then its progress, and completed, in seq order; each template's deltas join into its stored body", async () => {
    const h = await harness();
    const { clientId, input } = await clientWithProposition();
    const job = await h.submit(clientId);
    const result = await h.process(job);

    const events = await h.events(job.data.job_id);
    expect(events.map((e) => e.seq)).toEqual(seqRange(1, events.length));
    expect(types(withoutDeltas(events))).toEqual([
      'job:queued',
      'job:started',
      'job:progress',
      'job:progress',
      'job:progress',
      'job:completed',
    ]);
    // Each template's deltas come after the previous template's progress and before its own.
    let stored = 0;
    for (const e of events) {
      if (e.event_type === 'job:progress') stored++;
      if (e.event_type === 'job:delta') expect(e.template_index).toBe(stored);
    }
    expect(events.filter((e) => e.event_type === 'job:delta').length).toBeGreaterThan(3);

    const templates = await store.listJobTemplates(job.data.job_id);
    expect(templates.map((t) => t.kind)).toEqual(h.generator.kinds);
    expect(templates.map((t) => t.body)).toEqual(h.generator.kinds.map((k) => bodyOf(k, input)));
    expect(templates.map((t) => t.generator)).toEqual(['scripted', 'scripted', 'scripted']);
    await expectDeltasAreBodies(job.data.job_id, events);

    const ids = templates.map((t) => t.id);
    expect(result).toEqual({ template_ids: ids });
    expect(
      events
        .filter((e) => e.event_type === 'job:progress')
        .map((e) => [e.templates_done, e.templates_total, e.progress, e.template_id]),
    ).toEqual([
      [1, 3, 33, ids[0]],
      [2, 3, 66, ids[1]],
      [3, 3, 100, ids[2]],
    ]);
    expect(events.at(-1)).toMatchObject({
      event_type: 'job:completed',
      template_ids: ids,
      template_count: 3,
      usage: { prompt_tokens: 30, requests: 3, model_ms: 9 },
    });
    expect(await store.jobStatusDocument(job.data.job_id)).toMatchObject({
      status: 'completed',
      progress: 100,
      template_ids: ids,
    });
    expect(await h.publisher.draft(job.data.job_id), 'the draft is gone').toBeNull();
    expect(h.generator.requests).toEqual([
      { position: 0, prefix: '' },
      { position: 1, prefix: '' },
      { position: 2, prefix: '' },
    ]);
  });

  it('a retried attempt continues after the stored templates, from the text of the next one already published', async () => {
    const h = await harness({ attempts: 3 });
    const { clientId, input } = await clientWithProposition();
    const job = await h.submit(clientId);
    const jobId = job.data.job_id;
    let publishedText = '';
    h.generator.midway.set(1, async (_request, writtenSoFar) => {
      publishedText = writtenSoFar;
      await draftPublished(h, jobId, 1, writtenSoFar);
      throw new Error('The model stopped answering');
    });

    const firstTry = h.process(job);
    await expect(firstTry).rejects.toThrow('The model stopped answering');
    await expect(firstTry).rejects.not.toBeInstanceOf(UnrecoverableError);
    expect(publishedText.length).toBeGreaterThan(0);
    expect((await store.getJob(jobId))?.status, 'it is not failed: it will be retried').toBe(
      'running',
    );
    const [firstId] = await store.templateIds(jobId);

    const result = await h.process((await h.queue.getJob(jobId)) ?? job);
    expect(h.generator.requests).toEqual([
      { position: 0, prefix: '' },
      { position: 1, prefix: '' },
      { position: 1, prefix: publishedText },
      { position: 2, prefix: '' },
    ]);
    const templates = await store.listJobTemplates(jobId);
    expect(templates.map((t) => t.body)).toEqual(h.generator.kinds.map((k) => bodyOf(k, input)));
    expect(result.template_ids).toEqual(templates.map((t) => t.id));
    expect(result.template_ids[0], 'the first template was not written again').toBe(firstId);

    const events = await h.events(jobId);
    expect(events.map((e) => e.seq)).toEqual(seqRange(1, events.length));
    expect(types(withoutDeltas(events))).toEqual([
      'job:queued',
      'job:started',
      'job:progress',
      'job:started',
      'job:progress',
      'job:progress',
      'job:completed',
    ]);
    // The text published by the first attempt and the rest written by the second join into it.
    await expectDeltasAreBodies(jobId, events);
  });

  it('a retried attempt that failed before writing any text of a template publishes each progress once', async () => {
    const h = await harness({ attempts: 3 });
    const { clientId } = await clientWithProposition();
    const job = await h.submit(clientId);
    const jobId = job.data.job_id;
    h.generator.atStart.set(1, () => Promise.reject(new Error('The model stopped answering')));

    await expect(h.process(job)).rejects.toThrow('The model stopped answering');
    await h.process(job);

    const events = await h.events(jobId);
    expect(types(withoutDeltas(events))).toEqual([
      'job:queued',
      'job:started',
      'job:progress',
      'job:started',
      'job:progress',
      'job:progress',
      'job:completed',
    ]);
    expect(
      events.filter((e) => e.event_type === 'job:progress').map((e) => e.templates_done),
    ).toEqual([1, 2, 3]);
    await expectDeltasAreBodies(jobId, events);
  });

  it('announces the progress of a template that an attempt stored but died before announcing', async () => {
    const h = await harness();
    const { clientId, input } = await clientWithProposition();
    const job = await h.submit(clientId);
    const jobId = job.data.job_id;
    // What an attempt that died between storing its first template and publishing it leaves.
    await store.markJobStarted(jobId, new Date(), 3);
    const storedId = randomUUID();
    await store.saveTemplate(
      {
        id: storedId,
        jobId,
        clientId,
        kind: 'outreach_email',
        position: 0,
        title: 'outreach_email title',
        body: bodyOf('outreach_email', input),
        generator: 'scripted',
        usage: { prompt_tokens: 0, completion_tokens: 0, requests: 0, model_ms: 0 },
      },
      { done: 1, total: 3 },
    );

    const result = await h.process(job);
    expect(h.generator.requests.map((r) => r.position)).toEqual([1, 2]);
    expect(result.template_ids[0]).toBe(storedId);
    const events = await h.events(jobId);
    expect(types(withoutDeltas(events))).toEqual([
      'job:queued',
      'job:started',
      'job:progress',
      'job:progress',
      'job:progress',
      'job:completed',
    ]);
    expect(events.find((e) => e.event_type === 'job:progress')).toMatchObject({
      templates_done: 1,
      template_id: storedId,
    });
  });

  it('a job that fails for good after storing templates keeps them: job:failed names them, and BullMQ is told not to retry', async () => {
    const h = await harness({ attempts: 1 });
    const { clientId } = await clientWithProposition();
    const job = await h.submit(clientId);
    const jobId = job.data.job_id;
    h.generator.midway.set(2, () => Promise.reject(new Error('The model stopped answering')));

    const run = h.process(job);
    await expect(run).rejects.toBeInstanceOf(UnrecoverableError);
    await expect(run).rejects.toThrow('The model stopped answering');

    const kept = await store.templateIds(jobId);
    expect(kept).toHaveLength(2);
    const events = await h.events(jobId);
    expect(types(withoutDeltas(events))).toEqual([
      'job:queued',
      'job:started',
      'job:progress',
      'job:progress',
      'job:failed',
    ]);
    expect(events.at(-1)).toMatchObject({
      error_message: 'The model stopped answering',
      template_ids: kept,
      template_count: 2,
    });
    expect(await store.jobStatusDocument(jobId)).toMatchObject({
      status: 'failed',
      error_message: 'The model stopped answering',
      template_ids: kept,
    });
    expect(await h.publisher.draft(jobId), 'the draft is gone').toBeNull();
  });

  it('a model that refuses the request fails the job at once, though attempts are left', async () => {
    const h = await harness({ attempts: 3 });
    const { clientId } = await clientWithProposition();
    const job = await h.submit(clientId);
    const refusal = 'Template generation failed: the model rejected the request (401)';
    h.generator.atStart.set(0, () =>
      Promise.reject(new GenerationError(refusal, 'MODEL_REJECTED', false)),
    );

    await expect(h.process(job)).rejects.toBeInstanceOf(UnrecoverableError);
    const events = await h.events(job.data.job_id);
    expect(events.at(-1)).toMatchObject({
      event_type: 'job:failed',
      error_message: refusal,
      template_ids: [],
    });
  });

  it('fails a job for an unknown client at once, unrecoverably, without writing anything', async () => {
    const h = await harness({ attempts: 3 });
    const clientId = randomUUID();
    const job = await h.submit(clientId);

    const run = h.process(job);
    await expect(run).rejects.toBeInstanceOf(UnrecoverableError);
    const message = `Template generation failed: client ${clientId} does not exist`;
    await expect(run).rejects.toThrow(message);
    const events = await h.events(job.data.job_id);
    expect(types(events)).toEqual(['job:queued', 'job:started', 'job:failed']);
    expect(events.at(-1)).toMatchObject({ error_message: message, template_count: 0 });
    expect((await store.getJob(job.data.job_id))?.status).toBe('failed');
    expect(h.generator.requests).toEqual([]);
  });

  it('fails a job for a client without an active value proposition at once, unrecoverably', async () => {
    const h = await harness({ attempts: 3 });
    const client = await store.createClient({ name: 'No Pitch Ltd', industry: 'Retail' });
    await store.createValueProposition(client.id, { content: 'Not this one', is_active: false });
    const job = await h.submit(client.id);

    const run = h.process(job);
    await expect(run).rejects.toBeInstanceOf(UnrecoverableError);
    await expect(run).rejects.toThrow(
      `Template generation failed: client "No Pitch Ltd" (${client.id}) has no active value proposition`,
    );
    const events = await h.events(job.data.job_id);
    expect(types(events)).toEqual(['job:queued', 'job:started', 'job:failed']);
    expect((await store.getJob(job.data.job_id))?.status).toBe('failed');
    expect(h.generator.requests).toEqual([]);
  });

  it('a job cancelled mid-template stops at once, ends with job:cancelled and keeps its stored templates', async () => {
    const h = await harness();
    const { clientId } = await clientWithProposition();
    const job = await h.submit(clientId);
    const jobId = job.data.job_id;
    let reason: unknown;
    let reached = false;
    h.generator.midway.set(1, async (request) => {
      reached = true;
      await hangUntilAborted(request.signal).catch((err: unknown) => {
        reason = err;
        throw err;
      });
    });

    const run = h.process(job);
    await waitFor('the second template to be half-written', () => reached);
    await requestCancellation(
      { store, publisher: h.publisher, logger, queue: h.queue, redis, keyspace: h.keyspace },
      jobId,
    );
    const result = await run;

    expect(reason).toBeInstanceOf(JobCancelled);
    const kept = await store.templateIds(jobId);
    expect(kept).toHaveLength(1);
    expect(result).toEqual({ template_ids: kept });
    const events = await h.events(jobId);
    expect(types(withoutDeltas(events))).toEqual([
      'job:queued',
      'job:started',
      'job:progress',
      'job:cancelled',
    ]);
    expect(events.at(-1)).toMatchObject({ template_ids: kept, template_count: 1 });
    expect(await store.jobStatusDocument(jobId)).toMatchObject({
      status: 'cancelled',
      template_ids: kept,
    });
    expect(h.generator.requests.map((r) => r.position)).toEqual([0, 1]);
  });

  it('a job whose cancellation was asked for before it started ends as cancelled without writing', async () => {
    const h = await harness();
    const { clientId } = await clientWithProposition();
    const job = await h.submit(clientId);
    // As when a worker took the job just before the request could take it out of the queue.
    await store.requestCancel(job.data.job_id, new Date());

    await expect(h.process(job)).resolves.toEqual({ template_ids: [] });
    const events = await h.events(job.data.job_id);
    expect(types(events)).toEqual(['job:queued', 'job:cancelled']);
    expect((await store.getJob(job.data.job_id))?.status).toBe('cancelled');
    expect(h.generator.requests).toEqual([]);
  });

  it('a job past its deadline fails with the deadline message, keeping its stored templates', async () => {
    const timeoutMs = 1500;
    const h = await harness({ attempts: 3, timeoutMs });
    const { clientId } = await clientWithProposition();
    const job = await h.submit(clientId);
    const jobId = job.data.job_id;
    h.generator.midway.set(1, (request) => hangUntilAborted(request.signal));

    const run = h.process(job);
    await expect(run).rejects.toBeInstanceOf(UnrecoverableError);
    await expect(run).rejects.toThrow(timeoutMessage(timeoutMs));

    const kept = await store.templateIds(jobId);
    expect(kept).toHaveLength(1);
    const events = await h.events(jobId);
    expect(events.at(-1)).toMatchObject({
      event_type: 'job:failed',
      error_message: 'Template generation failed: the job did not finish within its 1.5 s deadline',
      template_ids: kept,
    });
    expect((await store.getJob(jobId))?.status).toBe('failed');
  });

  it('skips a duplicate delivery of a job that already ended: no event, nothing written', async () => {
    const h = await harness();
    const { clientId } = await clientWithProposition();
    const job = await h.submit(clientId);
    const first = await h.process(job);
    const before = await h.events(job.data.job_id);

    await expect(h.process(job)).resolves.toEqual({ template_ids: [] });
    expect(await h.events(job.data.job_id)).toEqual(before);
    expect(await store.templateIds(job.data.job_id)).toEqual(first.template_ids);
    expect(h.generator.requests).toHaveLength(3);
  });
});
