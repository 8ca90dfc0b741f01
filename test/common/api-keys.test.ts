import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { ApiKeys, apiKeyIdOf } from '../../src/common/api-keys.js';
import { createKeyspace } from '../../src/contract/index.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/**
 * API keys in a real Redis: made, checked, listed and revoked through `ApiKeys`, and through
 * `triton-events keys`, run as a child process reading the services' environment.
 */

const BIN = path.resolve(import.meta.dirname, '../../bin/triton-events.mjs');

let redis: RedisServer;
let client: Redis;
const prefix = `t${randomBytes(4).toString('hex')}:`;
const keyspace = createKeyspace(prefix);

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'keys', ...args], {
    env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  client?.disconnect();
  await redis?.close();
});

describe('ApiKeys', () => {
  it('makes a key that stands for its tenant, stored only as a hash', async () => {
    const keys = new ApiKeys({ redis: client, keyspace });
    const { key, info } = await keys.create({ tenant: 'acme' });
    expect(key).toMatch(/^tek_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}$/);
    expect(apiKeyIdOf(key)).toBe(info.id);
    expect(await keys.verify(key)).toEqual({ tenant: 'acme', admin: false, keyId: info.id });

    const stored = await client.hgetall(keyspace.apiKeyKey(info.id));
    expect(stored.tenant).toBe('acme');
    expect(JSON.stringify(stored)).not.toContain(key.slice(17));
    expect(await client.sismember(keyspace.apiKeyIdsKey, info.id)).toBe(1);
  });

  it('refuses a malformed, unknown or mistyped key, and an admin key says so', async () => {
    const keys = new ApiKeys({ redis: client, keyspace });
    const { key } = await keys.create({ tenant: 'ops', admin: true });
    expect((await keys.verify(key))?.admin).toBe(true);
    const last = key.at(-1) === 'A' ? 'B' : 'A';
    for (const bad of [
      '',
      'tek_',
      key.slice(0, -1),
      `${key.slice(0, -1)}${last}`,
      `tek_${'x'.repeat(12)}_${'y'.repeat(43)}`,
      `${key} `,
      key.toUpperCase(),
    ]) {
      expect(await keys.verify(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('a revoked key stops working at once here, and within the cache interval in another process', async () => {
    const here = new ApiKeys({ redis: client, keyspace, cacheMs: 300 });
    const elsewhere = new ApiKeys({ redis: client, keyspace, cacheMs: 300 });
    const { key, info } = await here.create({ tenant: 'beta' });
    expect(await elsewhere.verify(key)).toBeDefined();
    expect(elsewhere.peek(key)).toEqual({ tenant: 'beta', admin: false, keyId: info.id });
    const revoked = await here.revoke(info.id);
    expect(revoked?.revoked_at).toEqual(expect.any(String));
    expect(await here.verify(key)).toBeUndefined();
    await waitFor('the other process to drop the key', async () =>
      (await elsewhere.verify(key)) === undefined ? true : undefined,
    );
    expect(elsewhere.peek(key)).toBeNull();
    expect(await elsewhere.active(info.id)).toBe(false);
    // Revoking again keeps the first time; an unknown id is no key.
    expect((await here.revoke(info.id))?.revoked_at).toBe(revoked?.revoked_at);
    expect(await here.revoke('nope')).toBeUndefined();
  });

  it('says 503, not "bad key", when Redis does not answer', async () => {
    const down = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0 });
    down.on('error', () => undefined);
    const keys = new ApiKeys({ redis: down, keyspace });
    await expect(keys.verify(`tek_${'a'.repeat(12)}_${'b'.repeat(43)}`)).rejects.toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
    });
    down.disconnect();
  });
});

describe('triton-events keys', () => {
  it('create prints the key alone on stdout; list shows it without the secret; revoke revokes it', async () => {
    const created = await cli(['create', '--tenant', 'acme-corp']);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(created.stdout).toBe(`${key}\n`);
    const id = apiKeyIdOf(key) ?? '';
    expect(id).not.toBe('');
    expect(created.stderr).toContain(`Created key ${id} for tenant acme-corp`);
    const admin = await cli(['create', '--tenant', 'ops', '--admin']);
    expect(admin.code).toBe(0);

    const listed = await cli(['list', '--json']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(key);
    const rows = listed.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; tenant: string; admin: boolean });
    expect(rows).toContainEqual(expect.objectContaining({ id, tenant: 'acme-corp', admin: false }));
    expect(rows.some((r) => r.tenant === 'ops' && r.admin)).toBe(true);
    const table = await cli(['list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+TENANT\s+ADMIN\s+CREATED\s+REVOKED$/);

    const keys = new ApiKeys({ redis: client, keyspace });
    expect((await keys.verify(key))?.tenant).toBe('acme-corp');
    const revoked = await cli(['revoke', id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stderr).toContain(`Revoked key ${id} of tenant acme-corp`);
    expect(await new ApiKeys({ redis: client, keyspace }).verify(key)).toBeUndefined();
  });

  it('refuses bad usage with status 2 and an unknown id with status 1', async () => {
    expect((await cli(['create'])).code).toBe(2);
    expect((await cli(['create', '--tenant', 'Not A Tenant'])).code).toBe(2);
    expect((await cli(['frobnicate'])).code).toBe(2);
    const unknown = await cli(['revoke', 'AAAAAAAAAAAA']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no key has the id');
  });
});
