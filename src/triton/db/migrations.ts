import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * Schema migrations, in order. Kept in code rather than in files so that the one list is what
 * every process (and the tests) applies; Kysely's migrator takes a lock, so several processes
 * starting at once against one Postgres apply each migration once.
 */
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('clients')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('industry', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();

      await db.schema
        .createTable('value_propositions')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('client_id', 'uuid', (c) =>
          c.notNull().references('clients.id').onDelete('cascade'),
        )
        .addColumn('content', 'text', (c) => c.notNull())
        .addColumn('is_active', 'boolean', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      // At most one active proposition per client.
      await sql`create unique index value_propositions_one_active
        on value_propositions (client_id) where is_active`.execute(db);

      await db.schema
        .createTable('jobs')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('client_id', 'uuid', (c) => c.notNull())
        .addColumn('status', 'text', (c) =>
          c.notNull().check(sql`status in ('queued', 'running', 'completed', 'failed')`),
        )
        .addColumn('progress', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('templates_done', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('templates_total', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('error_message', 'text')
        .addColumn('generation_duration_ms', 'integer')
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('started_at', 'timestamptz')
        .addColumn('completed_at', 'timestamptz')
        .execute();
      await db.schema.createIndex('jobs_client_id').on('jobs').column('client_id').execute();

      await db.schema
        .createTable('templates')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('job_id', 'uuid', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
        .addColumn('client_id', 'uuid', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('templates_job_position', ['job_id', 'position'])
        .execute();
      await db.schema
        .createIndex('templates_client_id')
        .on('templates')
        .column('client_id')
        .execute();
    },
  },
  '0002_insertion_order': {
    // Rows created within the same clock tick (PGlite's clock ticks in milliseconds) tie on
    // created_at: an identity column gives "newest first" one meaning, the order of creation.
    async up(db: Kysely<unknown>) {
      for (const table of ['clients', 'value_propositions']) {
        await sql`alter table ${sql.table(table)} add column ord bigint generated always as identity`.execute(
          db,
        );
        await sql`create index ${sql.ref(`${table}_ord`)} on ${sql.table(table)} (ord)`.execute(db);
      }
    },
  },
  '0003_cancellation_and_usage': {
    // Jobs can be cancelled; what each template (and so each job) cost in model calls is kept.
    async up(db: Kysely<unknown>) {
      await sql`alter table jobs drop constraint jobs_status_check`.execute(db);
      await sql`alter table jobs add constraint jobs_status_check
        check (status in ('queued', 'running', 'completed', 'failed', 'cancelled'))`.execute(db);
      await db.schema.alterTable('jobs').addColumn('cancel_requested_at', 'timestamptz').execute();
      for (const table of ['jobs', 'templates']) {
        for (const column of ['prompt_tokens', 'completion_tokens', 'model_requests', 'model_ms']) {
          await db.schema
            .alterTable(table)
            .addColumn(column, 'integer', (c) => c.notNull().defaultTo(0))
            .execute();
        }
      }
      await db.schema.alterTable('templates').addColumn('generator', 'text').execute();
    },
  },
  '0004_tenants': {
    // Each record belongs to the tenant whose key made it (null: made with auth off). A tenant's
    // lists read its own clients, newest first, from one index.
    async up(db: Kysely<unknown>) {
      for (const table of ['clients', 'value_propositions', 'jobs', 'templates']) {
        await db.schema.alterTable(table).addColumn('tenant', 'text').execute();
      }
      await db.schema
        .createIndex('clients_tenant_ord')
        .on('clients')
        .columns(['tenant', 'ord'])
        .execute();
    },
  },
};

/** The schema's migrations, in order, for Kysely's `Migrator` (applied at start). */
export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};
