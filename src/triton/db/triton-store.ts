import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import {
  AppError,
  type JobUsage,
  type Client,
  type CreateClientBody,
  type JobStatusDocument,
  type Template,
  type TemplateKind,
  type ValueProposition,
} from '../../contract/index.js';
import type { ClientRow, Database, JobRow, TemplateRow, ValuePropositionRow } from './schema.js';

const iso = (d: Date) => d.toISOString();

/** A `clients` row as the API answers it. */
export function toClient(row: ClientRow): Client {
  return { id: row.id, name: row.name, industry: row.industry, created_at: iso(row.created_at) };
}

/** A `value_propositions` row as the API answers it. */
export function toValueProposition(row: ValuePropositionRow): ValueProposition {
  return {
    id: row.id,
    client_id: row.client_id,
    content: row.content,
    is_active: row.is_active,
    created_at: iso(row.created_at),
  };
}

/** The usage columns of a job or template row. */
function usageOf(row: {
  prompt_tokens: number;
  completion_tokens: number;
  model_requests: number;
  model_ms: number;
}): JobUsage {
  return {
    prompt_tokens: row.prompt_tokens,
    completion_tokens: row.completion_tokens,
    requests: row.model_requests,
    model_ms: row.model_ms,
  };
}

/** A template row as the API answers it. */
export function toTemplate(row: TemplateRow): Template {
  return {
    id: row.id,
    job_id: row.job_id,
    client_id: row.client_id,
    kind: row.kind,
    position: row.position,
    title: row.title,
    body: row.body,
    generator: row.generator ?? 'builtin',
    usage: usageOf(row),
    created_at: iso(row.created_at),
  };
}

/**
 * A job row and its template ids (in order) as the status document. Every stored template
 * counts, whatever the job's outcome: a failed or cancelled job keeps what it wrote, as its
 * terminal event says, and a retried attempt continues after it.
 */
export function toStatusDocument(row: JobRow, storedTemplateIds: string[]): JobStatusDocument {
  const live = row.status === 'queued' || row.status === 'running';
  return {
    job_id: row.id,
    client_id: row.client_id,
    status: row.status,
    progress: row.status === 'completed' ? 100 : live ? row.progress : null,
    template_ids: storedTemplateIds,
    template_count: storedTemplateIds.length,
    generation_duration_ms: row.generation_duration_ms,
    error_message: row.error_message,
    completed_at: row.completed_at ? iso(row.completed_at) : null,
    usage: usageOf(row),
    ...(row.tenant === null ? {} : { tenant_id: row.tenant }),
  };
}

/** A template about to be stored. */
export interface NewTemplate {
  id: string;
  jobId: string;
  clientId: string;
  /** The job's tenant. @defaultValue null (none) */
  tenant?: string | null;
  kind: TemplateKind;
  position: number;
  title: string;
  body: string;
  /** What wrote it: `builtin` or `openai:<model>`. */
  generator: string;
  usage: JobUsage;
}

/**
 * Every read and write triton makes, over one Kysely instance (PGlite or Postgres).
 *
 * Reads that take a `tenant` see only that tenant's records (undefined: every tenant's, for an
 * admin or with auth off): another tenant's record is not found, by the same single query that
 * finds none at all, so neither the answer nor its timing tells the two apart.
 */
export class TritonStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Creates a client owned by `tenant` (null: none, auth off). */
  async createClient(body: CreateClientBody, tenant: string | null = null): Promise<Client> {
    const row = await this.db
      .insertInto('clients')
      .values({ id: randomUUID(), name: body.name, industry: body.industry, tenant })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toClient(row);
  }

  async listClients({ limit = 100, offset = 0 } = {}, tenant?: string): Promise<Client[]> {
    const rows = await this.db
      .selectFrom('clients')
      .selectAll()
      .$if(tenant !== undefined, (q) => q.where('tenant', '=', tenant ?? ''))
      .orderBy('ord', 'desc')
      .limit(limit)
      .offset(offset)
      .execute();
    return rows.map(toClient);
  }

  async getClient(id: string, tenant?: string): Promise<Client | undefined> {
    const row = await this.clientRow(id, tenant);
    return row && toClient(row);
  }

  /** Who owns a client `tenant` may see (`{ tenant: null }`: nobody, auth off); undefined: none. */
  async clientOwner(id: string, tenant?: string): Promise<{ tenant: string | null } | undefined> {
    const row = await this.clientRow(id, tenant);
    return row && { tenant: row.tenant };
  }

  private clientRow(id: string, tenant: string | undefined) {
    return this.db
      .selectFrom('clients')
      .selectAll()
      .where('id', '=', id)
      .$if(tenant !== undefined, (q) => q.where('tenant', '=', tenant ?? ''))
      .executeTakeFirst();
  }

  /**
   * An active proposition replaces the client's previous active one, atomically. It belongs to
   * its client's tenant; a client `tenant` may not see is `CLIENT_NOT_FOUND`.
   */
  async createValueProposition(
    clientId: string,
    body: { content: string; is_active: boolean },
    tenant?: string,
  ): Promise<ValueProposition> {
    return this.db.transaction().execute(async (trx) => {
      const client = await trx
        .selectFrom('clients')
        .select(['id', 'tenant'])
        .where('id', '=', clientId)
        .$if(tenant !== undefined, (q) => q.where('tenant', '=', tenant ?? ''))
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
          tenant: client.tenant,
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

  /** Records a job, owned by `tenant` (null: none, auth off). */
  async createJob(id: string, clientId: string, tenant: string | null = null): Promise<JobRow> {
    return this.db
      .insertInto('jobs')
      .values({ id, client_id: clientId, status: 'queued', tenant })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async getJob(id: string, tenant?: string): Promise<JobRow | undefined> {
    return this.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', id)
      .$if(tenant !== undefined, (q) => q.where('tenant', '=', tenant ?? ''))
      .executeTakeFirst();
  }

  async jobStatusDocument(id: string, tenant?: string): Promise<JobStatusDocument | undefined> {
    const row = await this.getJob(id, tenant);
    if (!row) return undefined;
    return toStatusDocument(row, await this.templateIds(id));
  }

  /** A job's stored template ids, in order. */
  async templateIds(jobId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('templates')
      .select('id')
      .where('job_id', '=', jobId)
      .orderBy('position')
      .execute();
    return rows.map((t) => t.id);
  }

  /**
   * Starts an attempt, unless the job ended or someone asked to cancel it (then the row is
   * returned unchanged, for the caller to finish it). An attempt continues the job: templates
   * stored by earlier, interrupted attempts stay, and so do the job's progress and its first
   * start time. One statement, so one round trip.
   */
  async markJobStarted(
    id: string,
    startedAt: Date,
    templatesTotal: number,
  ): Promise<JobRow | undefined> {
    const started = await this.db
      .updateTable('jobs')
      .set((eb) => ({
        status: 'running',
        started_at: eb.fn.coalesce('started_at', eb.val(startedAt)),
        templates_total: templatesTotal,
        error_message: null,
        completed_at: null,
        generation_duration_ms: null,
        attempts: eb('attempts', '+', 1),
      }))
      .where('id', '=', id)
      .where('status', 'in', ['queued', 'running'])
      .where('cancel_requested_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    return started ?? (await this.getJob(id));
  }

  /** Stores one template and the job's progress and usage together, in one statement. */
  async saveTemplate(
    template: NewTemplate,
    progress: { done: number; total: number },
  ): Promise<void> {
    const { usage } = template;
    await this.db
      .with('saved', (db) =>
        db.insertInto('templates').values({
          id: template.id,
          job_id: template.jobId,
          client_id: template.clientId,
          tenant: template.tenant ?? null,
          kind: template.kind,
          position: template.position,
          title: template.title,
          body: template.body,
          generator: template.generator,
          prompt_tokens: usage.prompt_tokens,
          completion_tokens: usage.completion_tokens,
          model_requests: usage.requests,
          model_ms: usage.model_ms,
        }),
      )
      .updateTable('jobs')
      .set((eb) => ({
        templates_done: progress.done,
        progress: Math.floor((progress.done * 100) / progress.total),
        prompt_tokens: eb('prompt_tokens', '+', usage.prompt_tokens),
        completion_tokens: eb('completion_tokens', '+', usage.completion_tokens),
        model_requests: eb('model_requests', '+', usage.requests),
        model_ms: eb('model_ms', '+', usage.model_ms),
      }))
      .where('id', '=', template.jobId)
      .execute();
  }

  /** The positions of a job's stored templates, in order. */
  async storedPositions(jobId: string): Promise<number[]> {
    const rows = await this.db
      .selectFrom('templates')
      .select('position')
      .where('job_id', '=', jobId)
      .orderBy('position')
      .execute();
    return rows.map((r) => r.position);
  }

  /**
   * Notes that someone asked to cancel the job, unless it already ended. Returns the row as it
   * is afterwards (undefined: no such job that `tenant` may see).
   */
  async requestCancel(id: string, at: Date, tenant?: string): Promise<JobRow | undefined> {
    const row = await this.db
      .updateTable('jobs')
      .set((eb) => ({ cancel_requested_at: eb.fn.coalesce('cancel_requested_at', eb.val(at)) }))
      .where('id', '=', id)
      .$if(tenant !== undefined, (q) => q.where('tenant', '=', tenant ?? ''))
      .where('status', 'in', ['queued', 'running'])
      .returningAll()
      .executeTakeFirst();
    return row ?? (await this.getJob(id, tenant));
  }

  /**
   * Puts a running job back in the queue's hands (its worker is shutting down): it is queued
   * again, and keeps what it wrote. Returns whether it was running.
   */
  async markJobRequeued(id: string): Promise<boolean> {
    const row = await this.db
      .updateTable('jobs')
      .set({ status: 'queued' })
      .where('id', '=', id)
      .where('status', '=', 'running')
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Records a cancellation, unless the job already ended. Returns whether this call ended it:
   * only then may its terminal event be published.
   */
  async markJobCancelled(id: string, completedAt: Date, durationMs: number): Promise<boolean> {
    const row = await this.db
      .updateTable('jobs')
      .set({ status: 'cancelled', completed_at: completedAt, generation_duration_ms: durationMs })
      .where('id', '=', id)
      .where('status', 'in', ['queued', 'running'])
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
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

  async getTemplate(id: string, tenant?: string): Promise<Template | undefined> {
    const row = await this.db
      .selectFrom('templates')
      .selectAll()
      .where('id', '=', id)
      .$if(tenant !== undefined, (q) => q.where('tenant', '=', tenant ?? ''))
      .executeTakeFirst();
    return row && toTemplate(row);
  }
}
