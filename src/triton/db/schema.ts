import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { JobStatus, TemplateKind } from '../../contract/index.js';

/** Tables as Kysely sees them. Timestamps are `timestamptz`, read back as `Date`. */

type CreatedAt = ColumnType<Date, Date | undefined, never>;

/** Order of creation (an identity column): never written, only sorted on. */
type InsertionOrder = ColumnType<unknown, never, never>;

/**
 * The tenant a record belongs to, set when it is created and never changed; null for records
 * created with auth off (only admins see them once auth is on).
 */
type Tenant = ColumnType<string | null, string | null | undefined, never>;

export interface ClientsTable {
  id: string;
  ord: InsertionOrder;
  name: string;
  industry: string;
  tenant: Tenant;
  created_at: CreatedAt;
}

export interface ValuePropositionsTable {
  id: string;
  ord: InsertionOrder;
  client_id: string;
  content: string;
  is_active: boolean;
  tenant: Tenant;
  created_at: CreatedAt;
}

export interface JobsTable {
  id: string;
  /** Not a foreign key: a job for an unknown client is accepted, then fails saying so. */
  client_id: string;
  tenant: Tenant;
  status: ColumnType<JobStatus, JobStatus, JobStatus>;
  progress: Generated<number>;
  templates_done: Generated<number>;
  templates_total: Generated<number>;
  error_message: string | null;
  generation_duration_ms: number | null;
  attempts: Generated<number>;
  created_at: CreatedAt;
  started_at: Date | null;
  completed_at: Date | null;
  /** When someone asked to cancel the job (it stops, and is never retried). */
  cancel_requested_at: Date | null;
  prompt_tokens: Generated<number>;
  completion_tokens: Generated<number>;
  model_requests: Generated<number>;
  model_ms: Generated<number>;
}

export interface TemplatesTable {
  id: string;
  job_id: string;
  client_id: string;
  tenant: Tenant;
  kind: ColumnType<TemplateKind, TemplateKind, TemplateKind>;
  position: number;
  title: string;
  body: string;
  /** What wrote it: `builtin` or `openai:<model>`. */
  generator: string | null;
  prompt_tokens: Generated<number>;
  completion_tokens: Generated<number>;
  model_requests: Generated<number>;
  model_ms: Generated<number>;
  created_at: CreatedAt;
}

export interface Database {
  clients: ClientsTable;
  value_propositions: ValuePropositionsTable;
  jobs: JobsTable;
  templates: TemplatesTable;
}

export type ClientRow = Selectable<ClientsTable>;
export type ValuePropositionRow = Selectable<ValuePropositionsTable>;
export type JobRow = Selectable<JobsTable>;
export type NewJob = Insertable<JobsTable>;
export type TemplateRow = Selectable<TemplatesTable>;
