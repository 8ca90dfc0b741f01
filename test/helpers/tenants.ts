import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ApiKeys } from '../../src/common/api-keys.js';
import { createKeyspace } from '../../src/contract/index.js';
import { MareClient } from '../../src/client/index.js';
import { StreamTokens } from '../../src/mare/stream-tokens.js';
import { startSystem, type TestSystem, type TestSystemOptions } from './system.js';

/** What a system needs to run with AUTH=on (and without rate limits, for tests that send many). */
export function authEnv(): Record<string, string> {
  return {
    AUTH: 'on',
    STREAM_TOKEN_SECRET: randomBytes(32).toString('base64url'),
    SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
    WRITE_RATE_LIMIT_PER_MINUTE: '0',
  };
}

/** A system with AUTH=on, its key store, and a way to sign stream tokens as its gateways do. */
export interface AuthSystem {
  system: TestSystem;
  keys: ApiKeys;
  /** Signs tokens with the system's secret, on a clock of the caller's choosing. */
  tokens(options?: { ttlSeconds?: number; now?: () => number }): StreamTokens;
  close(): Promise<void>;
}

export async function startAuthSystem(options: TestSystemOptions = {}): Promise<AuthSystem> {
  const system = await startSystem({ ...options, env: { ...authEnv(), ...options.env } });
  const redis = new Redis(system.redis.url, { maxRetriesPerRequest: 1 });
  const keys = new ApiKeys({
    redis,
    keyspace: createKeyspace(system.config.common.keyPrefix),
    cacheMs: 0,
  });
  return {
    system,
    keys,
    tokens: ({ ttlSeconds = 900, now } = {}) =>
      new StreamTokens({
        secret: system.config.mare.streamTokenSecret ?? '',
        ttlSeconds,
        keys,
        ...(now ? { now } : {}),
      }),
    async close() {
      redis.disconnect();
      await system.close();
    },
  };
}

/** A tenant with a key, and a client, value proposition, finished job and template of its own. */
export interface Tenant {
  name: string;
  key: string;
  keyId: string;
  mare: MareClient;
  clientId: string;
  clientName: string;
  propositionId: string;
  /** Text only this tenant's records hold: it must never reach another tenant. */
  secret: string;
  jobId: string;
  templateId: string;
}

/** Makes a key for `name` and, through mare-api with it, a client, a proposition and a finished job. */
export async function seedTenant(auth: AuthSystem, name: string): Promise<Tenant> {
  const { key, info } = await auth.keys.create({ tenant: name });
  const mare = new MareClient({ baseUrl: auth.system.mareUrl, apiKey: key });
  const secret = `secret-${name}-${randomBytes(6).toString('hex')}`;
  const clientName = `Client of ${secret}`;
  const client = await mare.createClient({ name: clientName, industry: 'Healthcare' });
  const proposition = await mare.createValueProposition(client.id, {
    content: `We promise ${secret}`,
    is_active: true,
  });
  const { job_id: jobId } = await mare.generateTemplates(client.id);
  const result = await mare.watchJob(jobId).done;
  if (result.status !== 'completed') throw new Error(`seed job ${result.status}`);
  const [template] = await mare.getJobTemplates(jobId);
  if (!template) throw new Error('seed job has no template');
  return {
    name,
    key,
    keyId: info.id,
    mare,
    clientId: client.id,
    clientName,
    propositionId: proposition.id,
    secret,
    jobId,
    templateId: template.id,
  };
}

/** A well-formed key that no one was given. */
export function unknownKey(): string {
  return `tek_${randomBytes(9).toString('base64url')}_${randomBytes(32).toString('base64url')}`;
}
