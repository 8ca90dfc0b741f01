import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, TENANT_PATTERN, type Keyspace } from '../contract/index.js';
import type { RedisClient } from './redis.js';

/**
 * Who a request acts for, once authenticated: a tenant, which sees and creates only its own
 * records, or an admin, which sees every tenant's.
 */
export interface Principal {
  /**
   * The tenant whose records it sees and creates. Null only for mare-api's own reads from
   * triton-api (rebuilding a stream's state), which are an admin's and create nothing.
   */
  readonly tenant: string | null;
  /** Sees every tenant's records. */
  readonly admin: boolean;
  /** The id of the key it was authenticated with, when a key. */
  readonly keyId?: string;
}

/** An API key as `keys list` shows it: never the key itself. */
export interface ApiKeyInfo {
  id: string;
  tenant: string;
  admin: boolean;
  created_at: string;
  revoked_at: string | null;
}

/**
 * `tek_<id>_<secret>`: a 12-character id (what lists and revocations name) and 32 random bytes,
 * both base64url. Fixed lengths, so `_` inside either part cannot confuse the parse.
 */
const KEY_PATTERN = /^tek_([A-Za-z0-9_-]{12})_[A-Za-z0-9_-]{43}$/;
const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{12}$/;

/** The id part of a well-formed key, or undefined. */
export function apiKeyIdOf(key: string): string | undefined {
  return key.length === 60 ? KEY_PATTERN.exec(key)?.[1] : undefined;
}

/** Whether `id` has the shape of a key id. */
export function isApiKeyId(id: string): boolean {
  return KEY_ID_PATTERN.test(id);
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** A key's record as read from Redis, or null when there is no such key. */
interface KeyRecord {
  hash: Buffer;
  principal: Principal;
  revoked: boolean;
}

/** Where {@link ApiKeys} keeps keys, and how long a process trusts what it read. */
export interface ApiKeysOptions {
  /** The Redis both APIs use. */
  redis: RedisClient;
  keyspace: Keyspace;
  /**
   * How long a process trusts what it read of a key: a revoked key stops working everywhere
   * within this. @defaultValue 3000
   */
  cacheMs?: number;
  /** Records kept in the cache at most. @defaultValue 10000 */
  maxCached?: number;
}

/**
 * API keys, in the Redis both APIs use: each stored only as the SHA-256 of the whole key (a key
 * has 256 random bits: a fast hash is as safe as a slow one, and costs a microsecond per
 * request), with its tenant, whether it is an admin's, and when it was created and revoked.
 *
 * Verifying a key reads its record by id and compares hashes in constant time. Each process
 * keeps what it read for `cacheMs` (unknown ids too, so a flood of one bogus key costs Redis one
 * read per interval): a revoked key stops working everywhere within that. Concurrent checks of
 * one key share one read.
 */
export class ApiKeys {
  private readonly redis: RedisClient;
  private readonly keyspace: Keyspace;
  private readonly cacheMs: number;
  private readonly maxCached: number;
  private readonly cache = new Map<string, { record: KeyRecord | null; until: number }>();
  private readonly reading = new Map<string, Promise<KeyRecord | null>>();

  constructor({ redis, keyspace, cacheMs = 3000, maxCached = 10_000 }: ApiKeysOptions) {
    this.redis = redis;
    this.keyspace = keyspace;
    this.cacheMs = cacheMs;
    this.maxCached = maxCached;
  }

  /** Makes a key for `tenant`; the key is in the answer and nowhere else, ever. */
  async create({ tenant, admin = false }: { tenant: string; admin?: boolean }): Promise<{
    key: string;
    info: ApiKeyInfo;
  }> {
    if (!TENANT_PATTERN.test(tenant)) throw new Error(`"${tenant}" is not a valid tenant name`);
    const id = randomBytes(9).toString('base64url');
    const key = `tek_${id}_${randomBytes(32).toString('base64url')}`;
    const info: ApiKeyInfo = {
      id,
      tenant,
      admin,
      created_at: new Date().toISOString(),
      revoked_at: null,
    };
    await this.redis
      .multi()
      .hset(this.keyspace.apiKeyKey(id), {
        hash: sha256(key).toString('hex'),
        tenant,
        admin: admin ? '1' : '0',
        created_at: info.created_at,
      })
      .sadd(this.keyspace.apiKeyIdsKey, id)
      .exec();
    return { key, info };
  }

  /** Every key, oldest first. */
  async list(): Promise<ApiKeyInfo[]> {
    const ids = await this.redis.smembers(this.keyspace.apiKeyIdsKey);
    const infos = await Promise.all(ids.map((id) => this.info(id)));
    return infos
      .filter((info): info is ApiKeyInfo => info !== undefined)
      .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  }

  /** Revokes a key (a second revocation keeps the first time); undefined when there is none. */
  async revoke(id: string): Promise<ApiKeyInfo | undefined> {
    if (!isApiKeyId(id)) return undefined;
    const key = this.keyspace.apiKeyKey(id);
    if ((await this.redis.exists(key)) === 0) return undefined;
    await this.redis.hsetnx(key, 'revoked_at', new Date().toISOString());
    this.cache.delete(id);
    return this.info(id);
  }

  /**
   * Whom a key stands for, or undefined when it is not a key that works (malformed, unknown,
   * wrong, revoked). Rejects with `UPSTREAM_UNAVAILABLE` when Redis does not answer: that is not
   * the caller's fault, and must not read as a bad key.
   */
  async verify(key: string): Promise<Principal | undefined> {
    const id = apiKeyIdOf(key);
    if (id === undefined) return undefined;
    const record = await this.record(id);
    // Hashed first, whatever the record: a missing one costs the same as a wrong one.
    const given = sha256(key);
    if (!record || !timingSafeEqual(given, record.hash) || record.revoked) return undefined;
    return record.principal;
  }

  /**
   * What {@link ApiKeys.verify} would answer, from this process's cache alone, without waiting:
   * the principal; null for a key that does not work; undefined when the cache cannot tell (the
   * key was not read recently). For answers given before routing (the cached-lookup fast path).
   */
  peek(key: string): Principal | null | undefined {
    const id = apiKeyIdOf(key);
    if (id === undefined) return null;
    const cached = this.cache.get(id);
    if (!cached || cached.until <= Date.now()) return undefined;
    const record = cached.record;
    if (!record || record.revoked) return null;
    return timingSafeEqual(sha256(key), record.hash) ? record.principal : null;
  }

  /** Whether the key with this id exists and is not revoked (what stream tokens are checked by). */
  async active(id: string): Promise<boolean> {
    if (!isApiKeyId(id)) return false;
    const record = await this.record(id);
    return record !== null && !record.revoked;
  }

  private async info(id: string): Promise<ApiKeyInfo | undefined> {
    const fields = await this.redis.hgetall(this.keyspace.apiKeyKey(id));
    if (!fields.tenant || !fields.created_at) return undefined;
    return {
      id,
      tenant: fields.tenant,
      admin: fields.admin === '1',
      created_at: fields.created_at,
      revoked_at: fields.revoked_at ?? null,
    };
  }

  private record(id: string): Promise<KeyRecord | null> {
    const now = Date.now();
    const cached = this.cache.get(id);
    if (cached && cached.until > now) return Promise.resolve(cached.record);
    let pending = this.reading.get(id);
    if (!pending) {
      pending = this.read(id).finally(() => this.reading.delete(id));
      this.reading.set(id, pending);
    }
    return pending;
  }

  private async read(id: string): Promise<KeyRecord | null> {
    let fields: Record<string, string>;
    try {
      fields = await this.redis.hgetall(this.keyspace.apiKeyKey(id));
    } catch (err) {
      throw new AppError(
        'UPSTREAM_UNAVAILABLE',
        'Keys cannot be checked right now (Redis does not answer); retry shortly',
        2,
        { cause: err },
      );
    }
    const record: KeyRecord | null =
      fields.hash && fields.tenant
        ? {
            hash: Buffer.from(fields.hash, 'hex'),
            principal: { tenant: fields.tenant, admin: fields.admin === '1', keyId: id },
            revoked: fields.revoked_at !== undefined,
          }
        : null;
    if (record && record.hash.length !== 32) record.hash = Buffer.alloc(32);
    if (this.cache.size >= this.maxCached) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(id, { record, until: Date.now() + this.cacheMs });
    return record;
  }
}

/**
 * The tenant whose records `principal` may see, or undefined for every tenant's: an admin's, or
 * anyone's while auth is off (no principal).
 */
export function visibleTenant(principal: Principal | undefined): string | undefined {
  return principal && !principal.admin ? (principal.tenant ?? undefined) : undefined;
}

/** The tenant that owns what `principal` creates: null while auth is off. */
export function owningTenant(principal: Principal | undefined): string | null {
  return principal?.tenant ?? null;
}
