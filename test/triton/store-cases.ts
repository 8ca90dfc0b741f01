import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/common/logger.js';
import {
  AppError,
  NO_USAGE,
  TEMPLATE_KINDS,
  type JobStatusDocument,
} from '../../src/contract/index.js';
import type { TritonDatabase } from '../../src/triton/db/database.js';
import { migrationProvider } from '../../src/triton/db/migrations.js';
import type { TritonStore } from '../../src/triton/db/triton-store.js';

/** A logger that keeps its JSON lines' messages, to see what openDatabase did. */
export function captureLogger(): { logger: Logger; messages: string[] } {
  const messages: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (line) messages.push((JSON.parse(line) as { msg: string }).msg);
      }
      callback();
    },
  });
  return { logger: createLogger({ logLevel: 'info', logFormat: 'json' }, destination), messages };
}

/** What a backend's test file hands the shared cases. */
export interface StoreUnderTest {
  store: TritonStore;
  database: TritonDatabase;
  /** Log messages of the `openDatabase` call that created `database`. */
  openMessages: string[];
  /** Opens a second handle on the same database (migrations run again), logging to `logger`. */
  openAgain: (logger: Logger) => Promise<TritonDatabase>;
}

const TOTAL = TEMPLATE_KINDS.length;

/** Stores template `position` of a job the way the worker does, returning its id. */
async function saveTemplate(
  store: TritonStore,
  jobId: string,
  clientId: string,
  position: number,
): Promise<string> {
  const id = randomUUID();
  await store.saveTemplate(
    {
      id,
      jobId,
      clientId,
      kind: TEMPLATE_KINDS[position] ?? 'ad_copy',
      position,
      title: `Template ${position + 1}`,
      body: `Body of template ${position + 1}`,
      generator: 'builtin',
      usage: { prompt_tokens: 10, completion_tokens: 20, requests: 1, model_ms: 5 },
    },
    { done: position + 1, total: TOTAL },
  );
  return id;
}

async function newClient(store: TritonStore, name = 'Test Client - Message Broker') {
  return store.createClient({ name, industry: 'Healthcare' });
}

/** The store's behaviour, the same on every backend. */
export function describeStoreCases(getStore: () => StoreUnderTest): void {
  describe('migrations', () => {
    it('applied the initial migration when the database was first opened', () => {
      expect(getStore().openMessages).toContain('Applied migration 0001_initial');
    });

    it('are a no-op when a second handle opens the same database', async () => {
      const { store, openAgain } = getStore();
      const client = await newClient(store, 'Survives a second open');
      const { logger, messages } = captureLogger();
      const again = await openAgain(logger);
      try {
        expect(messages.filter((m) => m.startsWith('Applied migration'))).toEqual([]);
        const rows = await sql<{ name: string }>`select name from kysely_migration`.execute(
          again.db,
        );
        const all = Object.keys(await migrationProvider.getMigrations()).sort();
        expect(rows.rows.map((r) => r.name).sort()).toEqual(all);
        expect(all[0]).toBe('0001_initial');
        const seen = await again.db
          .selectFrom('clients')
          .select('name')
          .where('id', '=', client.id)
          .executeTakeFirst();
        expect(seen?.name).toBe('Survives a second open');
        await again.ping();
      } finally {
        await again.close();
      }
      // Closing the second handle leaves the first one working.
      expect(await store.getClient(client.id)).toEqual(client);
    });
  });

  describe('clients', () => {
    it('creates a client with an id and a creation time, and reads it back', async () => {
      const { store } = getStore();
      const client = await store.createClient({ name: 'Acme Health', industry: 'Healthcare' });
      expect(client).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
        name: 'Acme Health',
        industry: 'Healthcare',
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/) as string,
      });
      expect(Math.abs(Date.parse(client.created_at) - Date.now())).toBeLessThan(60_000);
      expect(await store.getClient(client.id)).toEqual(client);
    });

    it('reads an unknown client as undefined', async () => {
      expect(await getStore().store.getClient(randomUUID())).toBeUndefined();
    });

    it('keeps text exactly as given, quotes and non-ASCII included', async () => {
      const { store } = getStore();
      const name = `O'Brien "Clinics" — ünïcødé 🚑 ; drop table clients; --`;
      const client = await store.createClient({ name, industry: 'Health\ncare' });
      expect(await store.getClient(client.id)).toMatchObject({ name, industry: 'Health\ncare' });
    });

    it('lists clients newest first', async () => {
      const { store } = getStore();
      const a = await newClient(store, 'first');
      const b = await newClient(store, 'second');
      const c = await newClient(store, 'third');
      const ids = (await store.listClients({ limit: 1000 })).map((x) => x.id);
      const mine = ids.filter((id) => [a.id, b.id, c.id].includes(id));
      expect(mine).toEqual([c.id, b.id, a.id]);
      expect(ids[0]).toBe(c.id);
    });

    it('pages through the list with limit and offset, without gaps or repeats', async () => {
      const { store } = getStore();
      for (let i = 0; i < 5; i++) await newClient(store, `page ${i}`);
      const all = await store.listClients({ limit: 1000 });
      expect(all.length).toBeGreaterThanOrEqual(5);
      const paged = [];
      for (let offset = 0; offset < all.length; offset += 2) {
        const page = await store.listClients({ limit: 2, offset });
        expect(page.length).toBe(Math.min(2, all.length - offset));
        paged.push(...page);
      }
      expect(paged).toEqual(all);
      expect(await store.listClients({ limit: 10, offset: all.length })).toEqual([]);
    });

    it('lists at most 100 clients by default', async () => {
      const { store } = getStore();
      const all = await store.listClients({ limit: 1000 });
      expect(await store.listClients()).toEqual(all.slice(0, 100));
    });
  });

  describe('value propositions', () => {
    it('makes a new active proposition replace the previous active one', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const first = await store.createValueProposition(client.id, {
        content: 'We reduce readmissions by 30%',
        is_active: true,
      });
      expect(first).toMatchObject({ client_id: client.id, is_active: true });
      const second = await store.createValueProposition(client.id, {
        content: 'We cut waiting times in half',
        is_active: true,
      });
      const list = await store.listValuePropositions(client.id);
      expect(list.map((vp) => [vp.id, vp.is_active])).toEqual([
        [second.id, true],
        [first.id, false],
      ]);
      expect(await store.activeValueProposition(client.id)).toEqual(second);
    });

    it('leaves the active proposition alone when an inactive one is added', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const active = await store.createValueProposition(client.id, {
        content: 'active',
        is_active: true,
      });
      const draft = await store.createValueProposition(client.id, {
        content: 'draft',
        is_active: false,
      });
      expect(draft.is_active).toBe(false);
      expect(await store.activeValueProposition(client.id)).toEqual(active);
      expect((await store.listValuePropositions(client.id)).filter((v) => v.is_active)).toEqual([
        active,
      ]);
    });

    it('keeps exactly one active proposition when several are added at once', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const created = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          store.createValueProposition(client.id, { content: `vp ${i}`, is_active: true }),
        ),
      );
      expect(created).toHaveLength(6);
      const list = await store.listValuePropositions(client.id);
      expect(list).toHaveLength(6);
      const active = list.filter((vp) => vp.is_active);
      expect(active).toHaveLength(1);
      expect(await store.activeValueProposition(client.id)).toEqual(active[0]);
    });

    it('has no active proposition for a client without any', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      expect(await store.activeValueProposition(client.id)).toBeUndefined();
      expect(await store.listValuePropositions(client.id)).toEqual([]);
    });

    it('refuses a proposition for an unknown client with CLIENT_NOT_FOUND', async () => {
      const { store } = getStore();
      const unknown = randomUUID();
      const attempt = store.createValueProposition(unknown, { content: 'x', is_active: true });
      await expect(attempt).rejects.toBeInstanceOf(AppError);
      await expect(attempt).rejects.toMatchObject({ code: 'CLIENT_NOT_FOUND' });
      expect(await store.listValuePropositions(unknown)).toEqual([]);
    });
  });

  describe('jobs', () => {
    it('records a queued job with an empty status document', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const jobId = randomUUID();
      const row = await store.createJob(jobId, client.id);
      expect(row).toMatchObject({ id: jobId, client_id: client.id, status: 'queued', attempts: 0 });
      expect(await store.jobStatusDocument(jobId)).toEqual({
        job_id: jobId,
        client_id: client.id,
        status: 'queued',
        progress: 0,
        template_ids: [],
        template_count: 0,
        generation_duration_ms: null,
        error_message: null,
        completed_at: null,
        usage: NO_USAGE,
      } satisfies JobStatusDocument);
    });

    it('accepts a job for a client that does not exist (it fails later, saying why)', async () => {
      const { store } = getStore();
      const nil = '00000000-0000-0000-0000-000000000000';
      const jobId = randomUUID();
      await store.createJob(jobId, nil);
      expect((await store.jobStatusDocument(jobId))?.client_id).toBe(nil);
    });

    it('reads an unknown job as undefined', async () => {
      const { store } = getStore();
      expect(await store.getJob(randomUUID())).toBeUndefined();
      expect(await store.jobStatusDocument(randomUUID())).toBeUndefined();
    });

    it('runs a job from queued to completed with its template ids in order and progress 100', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const jobId = randomUUID();
      await store.createJob(jobId, client.id);
      const startedAt = new Date();
      const started = await store.markJobStarted(jobId, startedAt, TOTAL);
      expect(started).toMatchObject({
        status: 'running',
        attempts: 1,
        progress: 0,
        templates_done: 0,
        templates_total: TOTAL,
      });
      expect(started?.started_at?.toISOString()).toBe(startedAt.toISOString());

      const ids: string[] = [];
      for (let position = 0; position < TOTAL; position++) {
        ids.push(await saveTemplate(store, jobId, client.id, position));
        if (position === 2) {
          const doc = await store.jobStatusDocument(jobId);
          expect(doc).toMatchObject({ status: 'running', progress: 42, template_count: 3 });
          expect(doc?.template_ids).toEqual(ids);
          expect(await store.getJob(jobId)).toMatchObject({ templates_done: 3 });
        }
      }
      const completedAt = new Date(startedAt.getTime() + 1234);
      await store.markJobCompleted(jobId, completedAt, 1234);

      expect(await store.jobStatusDocument(jobId)).toEqual({
        job_id: jobId,
        client_id: client.id,
        status: 'completed',
        progress: 100,
        template_ids: ids,
        template_count: TOTAL,
        generation_duration_ms: 1234,
        error_message: null,
        completed_at: completedAt.toISOString(),
        // What writing each template cost adds up on the job.
        usage: { prompt_tokens: 70, completion_tokens: 140, requests: 7, model_ms: 35 },
      });
      const templates = await store.listJobTemplates(jobId);
      expect(templates.map((t) => t.id)).toEqual(ids);
      expect(templates.map((t) => t.kind)).toEqual([...TEMPLATE_KINDS]);
      expect(templates.map((t) => t.position)).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(await store.getTemplate(ids[3] ?? '')).toEqual(templates[3]);
      expect((await store.listClientTemplates(client.id)).map((t) => t.id).sort()).toEqual(
        [...ids].sort(),
      );
    });

    it('orders template ids by position, not by the order they were stored in', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const jobId = randomUUID();
      await store.createJob(jobId, client.id);
      await store.markJobStarted(jobId, new Date(), TOTAL);
      const byPosition = new Map<number, string>();
      for (const position of [3, 0, 6, 1, 5, 2, 4]) {
        byPosition.set(position, await saveTemplate(store, jobId, client.id, position));
      }
      const doc = await store.jobStatusDocument(jobId);
      expect(doc?.template_ids).toEqual([0, 1, 2, 3, 4, 5, 6].map((p) => byPosition.get(p)));
    });

    it('continues after the templates an earlier attempt stored when the job is started again (a retry)', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const jobId = randomUUID();
      await store.createJob(jobId, client.id);
      const firstStart = new Date(Date.now() - 5000);
      await store.markJobStarted(jobId, firstStart, TOTAL);
      const ids = [
        await saveTemplate(store, jobId, client.id, 0),
        await saveTemplate(store, jobId, client.id, 1),
        await saveTemplate(store, jobId, client.id, 2),
      ];

      const retried = await store.markJobStarted(jobId, new Date(), TOTAL);
      // Progress never goes backwards, and the job's start is its first attempt's.
      expect(retried).toMatchObject({ status: 'running', attempts: 2, templates_done: 3 });
      expect(retried?.started_at?.toISOString()).toBe(firstStart.toISOString());
      expect(await store.jobStatusDocument(jobId)).toMatchObject({
        status: 'running',
        progress: 42,
        template_ids: ids,
        template_count: 3,
      });
      expect(await store.storedPositions(jobId)).toEqual([0, 1, 2]);

      for (let position = 3; position < TOTAL; position++) {
        ids.push(await saveTemplate(store, jobId, client.id, position));
      }
      await store.markJobCompleted(jobId, new Date(), 10);
      expect((await store.jobStatusDocument(jobId))?.template_ids).toEqual(ids);
      for (const id of ids) expect(await store.getTemplate(id)).toBeDefined();
    });

    it('starts no attempt of a job someone asked to cancel, and cancels it only once', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const jobId = randomUUID();
      await store.createJob(jobId, client.id);
      const asked = await store.requestCancel(jobId, new Date());
      expect(asked?.cancel_requested_at).toBeInstanceOf(Date);
      // The request is kept, and starting leaves the job as it was for the caller to cancel.
      expect(await store.markJobStarted(jobId, new Date(), TOTAL)).toMatchObject({
        status: 'queued',
        attempts: 0,
      });
      const results = await Promise.all([
        store.markJobCancelled(jobId, new Date(), 0),
        store.markJobCancelled(jobId, new Date(), 0),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.markJobFailed(jobId, 'late', new Date(), 1)).toBe(false);
      expect(await store.jobStatusDocument(jobId)).toMatchObject({
        status: 'cancelled',
        progress: null,
        error_message: null,
      });
      // A finished job's row comes back unchanged: the caller answers 409.
      expect((await store.requestCancel(jobId, new Date()))?.status).toBe('cancelled');
      expect(await store.requestCancel(randomUUID(), new Date())).toBeUndefined();
    });

    it('puts a running job back in the queue, keeping what it wrote, only while it runs', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const jobId = randomUUID();
      await store.createJob(jobId, client.id);
      expect(await store.markJobRequeued(jobId)).toBe(false);
      await store.markJobStarted(jobId, new Date(), TOTAL);
      const id = await saveTemplate(store, jobId, client.id, 0);
      expect(await store.markJobRequeued(jobId)).toBe(true);
      expect(await store.jobStatusDocument(jobId)).toMatchObject({
        status: 'queued',
        template_ids: [id],
        progress: 14,
      });
    });

    it('ends a job only once: a second completion or failure changes nothing and says so', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const done = randomUUID();
      await store.createJob(done, client.id);
      await store.markJobStarted(done, new Date(), TOTAL);
      expect(await store.markJobCompleted(done, new Date(), 10)).toBe(true);
      expect(await store.markJobFailed(done, 'late failure', new Date(), 20)).toBe(false);
      expect(await store.markJobCompleted(done, new Date(), 30)).toBe(false);
      expect(await store.jobStatusDocument(done)).toMatchObject({
        status: 'completed',
        error_message: null,
        generation_duration_ms: 10,
      });

      const failed = randomUUID();
      await store.createJob(failed, client.id);
      const results = await Promise.all([
        store.markJobFailed(failed, 'timed out', new Date(), 1),
        store.markJobFailed(failed, 'worker died', new Date(), 2),
        store.markJobCompleted(failed, new Date(), 3),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect((await store.jobStatusDocument(failed))?.status).not.toBe('queued');
    });

    it('lists unfinished jobs created before a time, oldest first, for the sweeper', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const older: string = randomUUID();
      const newer: string = randomUUID();
      const ended: string = randomUUID();
      await store.createJob(older, client.id);
      await store.createJob(newer, client.id);
      await store.markJobStarted(newer, new Date(), TOTAL);
      await store.createJob(ended, client.id);
      await store.markJobFailed(ended, 'x', new Date(), 0);
      const cutoff = new Date(Date.now() + 60_000);
      const ids = (await store.unfinishedJobs(cutoff, 10_000)).map((j) => j.id);
      expect(ids.filter((id) => [older, newer, ended].includes(id))).toEqual([older, newer]);
      const before = (await store.unfinishedJobs(new Date(0))).map((j) => j.id);
      expect(before).toEqual([]);
    });

    it('records a failure with its message and a null progress', async () => {
      const { store } = getStore();
      const jobId = randomUUID();
      const clientId = randomUUID();
      await store.createJob(jobId, clientId);
      await store.markJobStarted(jobId, new Date(), TOTAL);
      const failedAt = new Date();
      const message = `Template generation failed: client ${clientId} does not exist`;
      await store.markJobFailed(jobId, message, failedAt, 17);
      expect(await store.jobStatusDocument(jobId)).toEqual({
        job_id: jobId,
        client_id: clientId,
        status: 'failed',
        progress: null,
        template_ids: [],
        template_count: 0,
        generation_duration_ms: 17,
        error_message: message,
        completed_at: failedAt.toISOString(),
        usage: NO_USAGE,
      });
    });

    it('keeps and counts the templates a job stored before it failed', async () => {
      const { store } = getStore();
      const client = await newClient(store);
      const jobId = randomUUID();
      await store.createJob(jobId, client.id);
      await store.markJobStarted(jobId, new Date(), TOTAL);
      const ids = [
        await saveTemplate(store, jobId, client.id, 0),
        await saveTemplate(store, jobId, client.id, 1),
      ];
      await store.markJobFailed(jobId, 'generator crashed', new Date(), 40);
      // The job:failed event carries the same ids (job-failure.ts), so what mare caches from it
      // and triton's own answer agree, and the templates listed under the job are these.
      expect(await store.jobStatusDocument(jobId)).toMatchObject({
        status: 'failed',
        progress: null,
        template_ids: ids,
        template_count: 2,
      });
      expect((await store.listJobTemplates(jobId)).map((t) => t.id)).toEqual(ids);
    });
  });
  describe('tenants', () => {
    it("shows each tenant its own records, and another tenant's as if they did not exist", async () => {
      const { store } = getStore();
      const acme = await store.createClient({ name: 'Acme', industry: 'Retail' }, 'acme');
      const beta = await store.createClient({ name: 'Beta', industry: 'Retail' }, 'beta');
      const open = await store.createClient({ name: 'Open', industry: 'Retail' });
      const vp = await store.createValueProposition(
        acme.id,
        { content: 'Faster checkouts', is_active: true },
        'acme',
      );
      expect(vp.client_id).toBe(acme.id);
      await expect(
        store.createValueProposition(beta.id, { content: 'x', is_active: true }, 'acme'),
      ).rejects.toMatchObject({ code: 'CLIENT_NOT_FOUND' });

      const listed = (await store.listClients({}, 'acme')).map((c) => c.id);
      expect(listed).toContain(acme.id);
      expect(listed).not.toContain(beta.id);
      expect(listed).not.toContain(open.id);
      const all = (await store.listClients({ limit: 1000 })).map((c) => c.id);
      expect(all).toEqual(expect.arrayContaining([acme.id, beta.id, open.id]));

      expect(await store.getClient(acme.id, 'acme')).toEqual(acme);
      expect(await store.getClient(acme.id, 'beta')).toBeUndefined();
      expect(await store.getClient(open.id, 'acme')).toBeUndefined();
      expect(await store.clientOwner(acme.id)).toEqual({ tenant: 'acme' });
      expect(await store.clientOwner(acme.id, 'beta')).toBeUndefined();

      const jobId = randomUUID();
      await store.createJob(jobId, acme.id, 'acme');
      const templateId = randomUUID();
      await store.saveTemplate(
        {
          id: templateId,
          jobId,
          clientId: acme.id,
          tenant: 'acme',
          kind: 'outreach_email',
          position: 0,
          title: 'Hello',
          body: 'Hello there',
          generator: 'builtin',
          usage: NO_USAGE,
        },
        { done: 1, total: TOTAL },
      );
      expect((await store.jobStatusDocument(jobId, 'acme'))?.tenant_id).toBe('acme');
      expect(await store.jobStatusDocument(jobId, 'beta')).toBeUndefined();
      expect(await store.getJob(jobId, 'beta')).toBeUndefined();
      expect(await store.requestCancel(jobId, new Date(), 'beta')).toBeUndefined();
      expect((await store.getJob(jobId))?.cancel_requested_at).toBeNull();
      expect((await store.getTemplate(templateId, 'acme'))?.id).toBe(templateId);
      expect(await store.getTemplate(templateId, 'beta')).toBeUndefined();
      // A job made with auth off has no tenant, and its document says none.
      const openJob = randomUUID();
      await store.createJob(openJob, open.id);
      expect(await store.jobStatusDocument(openJob)).not.toHaveProperty('tenant_id');
    });
  });
}
