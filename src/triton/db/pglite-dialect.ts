import type { PGlite } from '@electric-sql/pglite';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from 'kysely';

/**
 * Kysely on embedded PGlite. PGlite is one connection, so the driver hands it out to one
 * caller at a time: a transaction then owns it from BEGIN to COMMIT, as a pooled `pg`
 * connection would, and queries from other callers wait their turn.
 *
 * Why not a dialect from npm (tried with kysely 0.28 and PGlite 0.5):
 * - `kysely-pglite` hands the one connection to every caller at once: a query issued while
 *   another caller's transaction is open runs inside it, and is lost when that transaction
 *   rolls back (measured: an insert made beside a rolled-back transaction was gone). It also
 *   brings a code generator's command-line stack (oclif, kysely-codegen, chokidar) along.
 * - `kysely-pglite-dialect` serialises callers as this does, but its peer range stops at
 *   PGlite 0.4, so `npm install` refuses it beside 0.5 (ERESOLVE); forced in, the store tests
 *   failed 24 of 25 because its `destroy()` closes the PGlite instance, which here belongs to
 *   whoever created it (tests and restarts open Kysely again over the same PGlite). They pass
 *   only with a proxy that hides `close()`: more code than this file, and a forced install.
 */
export class PGliteDialect implements Dialect {
  constructor(private readonly pglite: PGlite) {}

  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new PGliteDriver(this.pglite);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}

class PGliteConnection implements DatabaseConnection {
  constructor(private readonly pglite: PGlite) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.pglite.query<R>(query.sql, query.parameters as unknown[]);
    return result.affectedRows === undefined
      ? { rows: result.rows }
      : { rows: result.rows, numAffectedRows: BigInt(result.affectedRows) };
  }

  streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGlite does not stream query results');
  }
}

class PGliteDriver implements Driver {
  private readonly connection: PGliteConnection;
  /** Resolves when the current holder releases the connection. */
  private tail: Promise<void> = Promise.resolve();
  private release: (() => void) | undefined;

  constructor(private readonly pglite: PGlite) {
    this.connection = new PGliteConnection(pglite);
  }

  async init(): Promise<void> {
    await this.pglite.waitReady;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    this.release = release;
    return this.connection;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin'));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  releaseConnection(): Promise<void> {
    const release = this.release;
    this.release = undefined;
    release?.();
    return Promise.resolve();
  }

  /** The PGlite instance belongs to whoever created it; closing Kysely leaves it open. */
  destroy(): Promise<void> {
    return Promise.resolve();
  }
}
