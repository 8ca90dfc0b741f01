import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, Migrator, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { redactUrl } from '../../common/redis.js';
import type { Logger } from '../../common/logger.js';
import { RepeatedErrorLog } from '../../common/repeated-error-log.js';
import { migrationProvider } from './migrations.js';
import { PGliteDialect } from './pglite-dialect.js';
import type { Database } from './schema.js';

/** triton's database: Kysely over a Postgres server (`pg`) or embedded PGlite. */
export interface TritonDatabase {
  readonly db: Kysely<Database>;
  readonly kind: 'postgres' | 'pglite';
  /** Where the data lives, for logs (passwords hidden). */
  readonly location: string;
  /** Resolves when a trivial query answers. */
  ping(): Promise<void>;
  /** Safe to call twice. */
  close(): Promise<void>;
}

/** What {@link openDatabase} opens: a Postgres server, PGlite on disk, or a given PGlite. */
export type DatabaseTarget =
  | {
      databaseUrl: string;
      /** Connections the pool opens at most. @defaultValue 10 */
      poolSize?: number;
    }
  | { pgliteDataDir: string }
  /** An open PGlite instance that the caller owns and closes (tests clone a template). */
  | { pglite: PGlite };

/** Opens the database and applies pending migrations. */
export async function openDatabase(
  target: DatabaseTarget,
  logger: Logger,
): Promise<TritonDatabase> {
  let db: Kysely<Database>;
  let kind: TritonDatabase['kind'];
  let location: string;
  let closeUnderlying: () => Promise<void>;

  if ('databaseUrl' in target) {
    const pool = new pg.Pool({ connectionString: target.databaseUrl, max: target.poolSize ?? 10 });
    // An idle client that loses its server emits 'error'; the pool replaces it on next use.
    const errors = new RepeatedErrorLog(logger);
    pool.on('error', (err) => errors.warn(err, 'Postgres idle client error'));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    kind = 'postgres';
    location = redactUrl(target.databaseUrl);
    closeUnderlying = async () => {};
  } else {
    let pglite: PGlite;
    if ('pglite' in target) {
      pglite = target.pglite;
      location = 'PGlite (provided)';
      closeUnderlying = async () => {};
    } else {
      if (target.pgliteDataDir !== 'memory://') {
        await mkdir(target.pgliteDataDir, { recursive: true });
      }
      pglite = await PGlite.create(target.pgliteDataDir);
      location = `PGlite ${target.pgliteDataDir}`;
      closeUnderlying = () => pglite.close();
    }
    db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    kind = 'pglite';
  }

  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    await closeUnderlying();
    throw new Error(
      `Database migration failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`,
    );
  }
  for (const r of results ?? [])
    logger.info({ migration: r.migrationName }, `Applied migration ${r.migrationName}`);

  let closing: Promise<void> | undefined;
  return {
    db,
    kind,
    location,
    async ping() {
      await sql`select 1`.execute(db);
    },
    close() {
      closing ??= (async () => {
        await db.destroy();
        await closeUnderlying();
      })();
      return closing;
    },
  };
}
