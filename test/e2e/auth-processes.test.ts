import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { ApiKeys } from '../../src/common/api-keys.js';
import { createKeyspace } from '../../src/contract/index.js';
import { PartProcess } from '../helpers/part-process.js';
import { freePort } from '../helpers/ports.js';
import { startRedis } from '../helpers/redis.js';
import { openSse } from '../helpers/sse-client.js';
import { http } from '../helpers/system.js';

/**
 * The switch, as an operator meets it: real processes configured by their environment. An API
 * that would listen on every interface with AUTH unset does not start (one line naming AUTH);
 * AUTH=off there is a choice it accepts; `npm start` on this machine needs nothing and says auth
 * is off; with AUTH=on each missing secret is named. And with auth on, whatever the parts log
 * at debug level, no key, stream token or query value of a request reaches a line.
 */

let redis: RedisServer;
const parts: PartProcess[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const part of parts) await part.stop();
  await redis?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function start(
  script: string,
  env: Record<string, string>,
  ready?: RegExp,
): Promise<PartProcess> {
  const part = await PartProcess.start(script, env, ready ? { ready } : {});
  parts.push(part);
  return part;
}

/** What a part printed that is not a JSON log line, line by line. */
function printed(part: PartProcess): string[] {
  return part.output.split('\n').filter((line) => line.trim() !== '');
}

describe('the AUTH switch', () => {
  it.each(['src/triton/main-api.ts', 'src/mare/main-api.ts', 'src/cli/start.ts'])(
    '%s on HOST=0.0.0.0 with AUTH unset exits 1 with one line naming AUTH',
    async (script) => {
      const part = await start(script, {
        HOST: '0.0.0.0',
        REDIS_URL: redis.url,
        PGLITE_DATA_DIR: 'memory://',
        TRITON_API_PORT: String(await freePort()),
        MARE_API_PORT: String(await freePort()),
      });
      expect(await part.exited).toBe(1);
      const lines = printed(part);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^Invalid configuration: AUTH: /);
      expect(lines[0]).toContain('0.0.0.0');
    },
  );

  it('AUTH=off on HOST=0.0.0.0 is a choice: the API starts and says auth is off', async () => {
    const port = await freePort();
    const part = await start(
      'src/triton/main-api.ts',
      {
        HOST: '0.0.0.0',
        AUTH: 'off',
        REDIS_URL: redis.url,
        PGLITE_DATA_DIR: 'memory://',
        TRITON_API_PORT: String(port),
      },
      /^Server listening at/,
    );
    expect(part.logs.some((l) => /^Auth: off/.test(l.msg))).toBe(true);
    expect((await http('GET', `http://127.0.0.1:${port}/clients/`)).status).toBe(200);
  });

  it('npm start on this machine needs no configuration: auth is off, and it says so', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'triton-auth-launcher-'));
    dirs.push(dataDir);
    const marePort = await freePort();
    const launcher = await start(
      'src/cli/start.ts',
      {
        REDIS_URL: redis.url,
        DATA_DIR: dataDir,
        TRITON_API_PORT: String(await freePort()),
        MARE_API_PORT: String(marePort),
      },
      /^The system is up/,
    );
    const up = launcher.logs.find((l) => /^The system is up/.test(l.msg));
    expect(up?.msg).toMatch(/Auth {8}off/);
    expect(launcher.logs.filter((l) => /^Auth: off/.test(l.msg))).toHaveLength(2);
    const clients = await http('GET', `http://127.0.0.1:${marePort}/v1/triton/clients`);
    expect(clients.status).toBe(200);
    await launcher.stop();
  });

  it.each([
    ['GATEWAY_SECRET', { STREAM_TOKEN_SECRET: 's'.repeat(40) }],
    ['STREAM_TOKEN_SECRET', { GATEWAY_SECRET: 'g'.repeat(40) }],
  ])('mare-api with AUTH=on but no %s exits 1 with one line naming it', async (name, env) => {
    const part = await start('src/mare/main-api.ts', {
      AUTH: 'on',
      REDIS_URL: redis.url,
      MARE_API_PORT: String(await freePort()),
      ...env,
    });
    expect(await part.exited).toBe(1);
    const lines = printed(part);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^Invalid configuration: ${name}: required with AUTH=on`));
  });

  it('CORS_ORIGINS=* with AUTH=on exits 1 naming CORS_ORIGINS', async () => {
    const part = await start('src/mare/main-api.ts', {
      AUTH: 'on',
      CORS_ORIGINS: '*',
      REDIS_URL: redis.url,
    });
    expect(await part.exited).toBe(1);
    expect(printed(part)).toEqual([
      expect.stringMatching(/^Invalid configuration: CORS_ORIGINS: /),
    ]);
  });
});

describe('log lines with auth on', () => {
  it('never show a key, a stream token or a query value, whatever is asked', async () => {
    const prefix = `logs${randomBytes(3).toString('hex')}:`;
    const secrets = { GATEWAY_SECRET: randomBytes(24).toString('hex') };
    const common = {
      AUTH: 'on',
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      LOG_LEVEL: 'trace',
      ...secrets,
    };
    const [tritonPort, marePort] = [await freePort(), await freePort()];
    const triton = await start(
      'src/triton/main-api.ts',
      {
        ...common,
        PGLITE_DATA_DIR: 'memory://',
        TRITON_API_PORT: String(tritonPort),
        GENERATION_STEP_MS: '5',
      },
      /^Server listening at/,
    );
    const mare = await start(
      'src/mare/main-api.ts',
      {
        ...common,
        STREAM_TOKEN_SECRET: randomBytes(32).toString('base64url'),
        TRITON_API_URL: `http://127.0.0.1:${tritonPort}`,
        MARE_API_PORT: String(marePort),
      },
      /^Server listening at/,
    );
    expect(mare.logs.some((l) => /^Auth: on/.test(l.msg))).toBe(true);
    const client = new Redis(redis.url);
    const keys = new ApiKeys({ redis: client, keyspace: createKeyspace(prefix) });
    const { key } = await keys.create({ tenant: 'acme' });
    const { key: revoked, info } = await keys.create({ tenant: 'acme' });
    await keys.revoke(info.id);
    client.disconnect();
    const mareUrl = `http://127.0.0.1:${marePort}`;
    const withKey = { authorization: `Bearer ${key}` };

    const created = await http<{ id: string }>(
      'POST',
      `${mareUrl}/v1/triton/clients`,
      { name: 'Acme', industry: 'Retail' },
      withKey,
    );
    await http(
      'POST',
      `${mareUrl}/v1/triton/clients/${created.body.id}/value-propositions`,
      { content: 'Faster checkouts' },
      withKey,
    );
    const job = await http<{ job_id: string; stream_token: string }>(
      'POST',
      `${mareUrl}/v1/triton/clients/${created.body.id}/generate-templates`,
      undefined,
      withKey,
    );
    const token = job.body.stream_token;
    const sse = await openSse(
      `${mareUrl}/v1/triton/jobs/${job.body.job_id}/subscribe?token=${token}`,
    );
    await sse.ended;
    const notFound = await http(
      'GET',
      `${mareUrl}/no/such/path?token=${token}&key=${key}`,
      undefined,
      withKey,
    );
    expect(notFound.status).toBe(404);
    expect(JSON.stringify(notFound.body)).not.toContain(token);
    expect(JSON.stringify(notFound.body)).not.toContain(key);
    for (const attempt of [
      http('GET', `${mareUrl}/v1/triton/events?token=${token.slice(0, -2)}xx`),
      http('GET', `${mareUrl}/v1/triton/clients`, undefined, {
        authorization: `Bearer ${revoked}`,
      }),
      http('GET', `http://127.0.0.1:${tritonPort}/clients/`, undefined, withKey),
      http(
        'GET',
        `${mareUrl}/v1/triton/jobs/${job.body.job_id}?token=${token}`,
        undefined,
        withKey,
      ),
    ]) {
      expect((await attempt).status).toBeLessThan(500);
    }

    const output = [triton, mare].map((p) => `${p.lines.join('\n')}\n${p.output}`).join('\n');
    expect(output.length).toBeGreaterThan(1000);
    for (const secret of [key.slice(17), revoked.slice(17), token, token.split('.')[2] ?? token]) {
      expect(output).not.toContain(secret);
    }
    expect(output).not.toContain(secrets.GATEWAY_SECRET);
  });
});
