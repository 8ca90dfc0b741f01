import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import {
  AppError,
  type Client,
  type CreateClientBody,
  type JobStatusDocument,
  type Template,
  type TemplateKind,
  type ValueProposition,
} from '../../contract/index.js';
import type { ClientRow, Database, JobRow, TemplateRow, ValuePropositionRow } from './schema.js';

const iso = (d: Date) => d.toISOString();

export function toClient(row: ClientRow): Client {
  return { id: row.id, name: row.name, industry: row.industry, created_at: iso(row.created_at) };
}

export function toValueProposition(row: ValuePropositionRow): ValueProposition {
  return {
    id: row.id,
    client_id: row.client_id,
    content: row.content,
    is_active: row.is_active,
    created_at: iso(row.created_at),
  };
}

export function toTemplate(row: TemplateRow): Template {
  return {
    id: row.id,
    job_id: row.job_id,
    client_id: row.client_id,
    kind: row.kind,
    position: row.position,
    title: row.title,
    body: row.body,
    created_at: iso(row.created_at),
  };
}

/**
 * A job row and its template ids (in order) as the status document. A failed job lists no
 * templates, as its `job:failed` event implies (statusDocumentFromTerminalEvent): otherwise a
 * gateway's cached answer and triton's answer for a job that failed part-way would disagree.
 */
export function toStatusDocument(row: JobRow, storedTemplateIds: string[]): JobStatusDocument {
  const templateIds = row.status === 'failed' ? [] : storedTemplateIds;
  return {
    job_id: row.id,
    client_id: row.client_id,
    status: row.status,
    progress: row.status === 'failed' ? null : row.status === 'completed' ? 100 : row.progress,
    template_ids: templateIds,
    template_count: templateIds.length,
    generation_duration_ms: row.generation_duration_ms,
    error_message: row.error_message,
    completed_at: row.completed_at ? iso(row.completed_at) : null,
  };
}

export interface NewTemplate {
  id: string;
  jobId: string;
  clientId: string;
  kind: TemplateKind;
  position: number;
  title: string;
  body: string;
}

/** Every read and write triton makes, over one Kysely instance (PGlite or Postgres). */
export class TritonStore {
  constructor(private readonly db: Kysely<Database>) {}

  async createClient(body: CreateClientBody): Promise<Client> {
    const row = await this.db
      .insertInto('clients')
      .values({ id: randomUUID(), name: body.name, industry: body.industry })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toClient(row);
  }

  async listClients({ limit = 100, offset = 0 } = {}): Promise<Client[]> {
    const rows = await this.db
      .selectFrom('clients')
      .selectAll()
      .orderBy('ord', 'desc')
      .limit(limit)
      .offset(offset)
      .execute();
    return rows.map(toClient);
  }

  async getClient(id: string): Promise<Client | undefined> {
    const row = await this.db
      .selectFrom('clients')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row && toClient(row);
  }

  /** An active proposition replaces the client's previous active one, atomically. */
  async createValueProposition(
    clientId: string,
    body: { content: string; is_active: boolean },
  ): Promise<ValueProposition> {
    return this.db.transaction().execute(async (trx) => {
      const client = await trx
        .selectFrom('clients')
        .select('id')
        .where('id', '=', clientId)
        .forUpdate()
        .executeTakeFirst();
      if (!client) throw new AppError('CLIENT_NOT_FOUND', `Client ${clientId} does not exist`);
      if (body.is_active) {
        await trx
          .updateTable('value_propositions')
          .set({ is_active: false })
          .where('client_id', '=', clientId)
          .where('is_active', '=', true)
          .execute();
      }
      const row = await trx
        .insertInto('value_propositions')
        .values({
          id: randomUUID(),
          client_id: clientId,
          content: body.content,
          is_active: body.is_active,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toValueProposition(row);
    });
  }

  async listValuePropositions(clientId: string): Promise<ValueProposition[]> {
    const rows = await this.db
      .selectFrom('value_propositions')
      .selectAll()
      .where('client_id', '=', clientId)
      .orderBy('ord', 'desc')
      .execute();
    return rows.map(toValueProposition);
  }

  async activeValueProposition(clientId: string): Promise<ValueProposition | undefined> {
    const row = await this.db
      .selectFrom('value_propositions')
      .selectAll()
      .where('client_id', '=', clientId)
      .where('is_active', '=', true)
      .executeTakeFirst();
    return row && toValueProposition(row);
  }

  async createJob(id: string, clientId: string): Promise<JobRow> {
    return this.db
      .insertInto('jobs')
      .values({ id, client_id: clientId, status: 'queued' })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async getJob(id: string): Promise<JobRow | undefined> {
    return this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async jobStatusDocument(id: string): Promise<JobStatusDocument | undefined> {
    const row = await this.getJob(id);
    if (!row) return undefined;
    const templates = await this.db
      .selectFrom('templates')
      .select('id')
      .where('job_id', '=', id)
      .orderBy('position')
      .execute();
    return toStatusDocument(
      row,
      templates.map((t) => t.id),
    );
  }

  /**
   * Starts an attempt: the job is running from scratch (templates of an earlier, interrupted
   * attempt are dropped so that a retry never mixes two attempts' output). One statement, so
   * one round trip, and atomic without a transaction.
   */
  async markJobStarted(
    id: string,
    startedAt: Date,
    templatesTotal: number,
  ): Promise<JobRow | undefined> {
    return this.db
      .with('dropped', (db) => db.deleteFrom('templates').where('job_id', '=', id))
      .updateTable('jobs')
      .set((eb) => ({
        status: 'running',
        started_at: startedAt,
        progress: 0,
        templates_done: 0,
        templates_total: templatesTotal,
        error_message: null,
        completed_at: null,
        generation_duration_ms: null,
        attempts: eb('attempts', '+', 1),
      }))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  }

  /** Stores one template and the job's progress together, in one statement. */
  async saveTemplate(
    template: NewTemplate,
    progress: { done: number; total: number },
  ): Promise<void> {
    await this.db
      .with('saved', (db) =>
        db.insertInto('templates').values({
          id: template.id,
          job_id: template.jobId,
          client_id: template.clientId,
          kind: template.kind,
          position: template.position,
          title: template.title,
          body: template.body,
        }),
      )
      .updateTable('jobs')
      .set({
        templates_done: progress.done,
        progress: Math.floor((progress.done * 100) / progress.total),
      })
      .where('id', '=', template.jobId)
      .execute();
  }

  /**
   * Records success, unless the job already ended (failed by its deadline meanwhile, say).
   * Returns whether this call ended it: only then may its terminal event be published.
   */
  async markJobCompleted(id: string, completedAt: Date, durationMs: number): Promise<boolean> {
    const row = await this.db
      .updateTable('jobs')
      .set({
        status: 'completed',
        progress: 100,
        completed_at: completedAt,
        generation_duration_ms: durationMs,
      })
      .where('id', '=', id)
      .where('status', 'in', ['queued', 'running'])
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Records failure, unless the job already ended. Several processes may notice the same
   * failure (the worker, a queue listener, the sweeper): exactly one of them gets true.
   */
  async markJobFailed(
    id: string,
    message: string,
    completedAt: Date,
    durationMs: number,
  ): Promise<boolean> {
    const row = await this.db
      .updateTable('jobs')
      .set({
        status: 'failed',
        error_message: message,
        completed_at: completedAt,
        generation_duration_ms: durationMs,
      })
      .where('id', '=', id)
      .where('status', 'in', ['queued', 'running'])
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Unfinished jobs created before `createdBefore`, oldest first: the sweeper's candidates. */
  async unfinishedJobs(createdBefore: Date, limit = 100): Promise<JobRow[]> {
    return this.db
      .selectFrom('jobs')
      .selectAll()
      .where('status', 'in', ['queued', 'running'])
      .where('created_at', '<', createdBefore)
      .orderBy('created_at')
      .limit(limit)
      .execute();
  }

  async listJobTemplates(jobId: string): Promise<Template[]> {
    const rows = await this.db
      .selectFrom('templates')
      .selectAll()
      .where('job_id', '=', jobId)
      .orderBy('position')
      .execute();
    return rows.map(toTemplate);
  }

  async listClientTemplates(
    clientId: string,
    { limit = 100, offset = 0 } = {},
  ): Promise<Template[]> {
    // Newest job first, each job's templates in order: paging never splits or mixes jobs' order.
    const rows = await this.db
      .selectFrom('templates')
      .innerJoin('jobs', 'jobs.id', 'templates.job_id')
      .selectAll('templates')
      .where('templates.client_id', '=', clientId)
      .orderBy('jobs.created_at', 'desc')
      .orderBy('jobs.id')
      .orderBy('templates.position')
      .limit(limit)
      .offset(offset)
      .execute();
    return rows.map(toTemplate);
  }

  async getTemplate(id: string): Promise<Template | undefined> {
    const row = await this.db
      .selectFrom('templates')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row && toTemplate(row);
  }
}
