import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MareClient } from '../../src/client/index.js';
import { PartProcess } from '../helpers/part-process.js';
import { freePort } from '../helpers/ports.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import type { EventData as Event } from '../helpers/events.js';

/**
 * Redis as production runs it: TLS only (`rediss://`, a certificate from a CA of the test's own,
 * made here with openssl, trusted through NODE_EXTRA_CA_CERTS) and an ACL user with a password
 * (`rediss://user:password@…`), the default user off. triton-api (with its worker) and mare-api
 * run as processes with AUTH=on; the key is made by `triton-events keys create` against the same
 * Redis. A job runs end to end, and no password reaches a line of output.
 */

const run = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../../bin/triton-events.mjs');
const USER = 'triton';
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

let dir: string;
let server: ChildProcess | undefined;
let tlsPort = 0;
let redisUrl = '';
let caFile = '';
const parts: PartProcess[] = [];
let mareUrl = '';

/** A CA, and a certificate for 127.0.0.1 and localhost that it signs. */
async function makeCertificates(): Promise<void> {
  const at = (name: string) => path.join(dir, name);
  const quiet = { cwd: dir };
  await run(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      at('ca.key'),
      '-out',
      at('ca.crt'),
      '-days',
      '2',
      '-subj',
      '/CN=triton-events test CA',
    ],
    quiet,
  );
  await run(
    'openssl',
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      at('server.key'),
      '-out',
      at('server.csr'),
      '-subj',
      '/CN=localhost',
    ],
    quiet,
  );
  writeFileSync(at('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      at('server.csr'),
      '-CA',
      at('ca.crt'),
      '-CAkey',
      at('ca.key'),
      '-CAcreateserial',
      '-out',
      at('server.crt'),
      '-days',
      '2',
      '-extfile',
      at('ext.cnf'),
    ],
    quiet,
  );
  caFile = at('ca.crt');
}

/** redis-server with TLS alone (no plain port) and one ACL user; the default user is off. */
async function startTlsRedis(): Promise<void> {
  tlsPort = await freePort();
  const at = (name: string) => path.join(dir, name);
  server = spawn(
    'redis-server',
    [
      '--port',
      '0',
      '--tls-port',
      String(tlsPort),
      '--bind',
      '127.0.0.1',
      '--tls-cert-file',
      at('server.crt'),
      '--tls-key-file',
      at('server.key'),
      '--tls-ca-cert-file',
      at('ca.crt'),
      '--tls-auth-clients',
      'no',
      '--user',
      'default',
      'off',
      '--user',
      USER,
      'on',
      `>${PASSWORD}`,
      '~*',
      '&*',
      '+@all',
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server: ${output}`)), 10_000);
    server?.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    server?.once('exit', () => reject(new Error(`redis-server exited: ${output}`)));
  });
  server.stdout?.resume();
  redisUrl = `rediss://${USER}:${PASSWORD}@127.0.0.1:${tlsPort}`;
}

/** The environment every part and the CLI read: the same Redis, trusted through our CA. */
function env(extra: Record<string, string> = {}): Record<string, string> {
  return { REDIS_URL: redisUrl, NODE_EXTRA_CA_CERTS: caFile, REDIS_KEY_PREFIX: 'tls:', ...extra };
}

function keysCli(args: string[], extra: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, 'keys', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env(extra) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr })),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'triton-redis-tls-'));
  await makeCertificates();
  await startTlsRedis();
  const secrets = {
    AUTH: 'on',
    GATEWAY_SECRET: randomBytes(24).toString('hex'),
    LOG_LEVEL: 'info',
  };
  const [tritonPort, marePort] = [await freePort(), await freePort()];
  parts.push(
    await PartProcess.start(
      'src/triton/main-api.ts',
      env({
        ...secrets,
        PGLITE_DATA_DIR: 'memory://',
        TRITON_API_PORT: String(tritonPort),
        GENERATION_STEP_MS: '10',
      }),
      { ready: /^Server listening at/ },
    ),
  );
  parts.push(
    await PartProcess.start(
      'src/mare/main-api.ts',
      env({
        ...secrets,
        STREAM_TOKEN_SECRET: randomBytes(32).toString('base64url'),
        TRITON_API_URL: `http://127.0.0.1:${tritonPort}`,
        MARE_API_PORT: String(marePort),
      }),
      { ready: /^Server listening at/ },
    ),
  );
  mareUrl = `http://127.0.0.1:${marePort}`;
}, 90_000);

afterAll(async () => {
  for (const part of parts) await part.stop();
  server?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Redis with TLS and an ACL user', () => {
  it('runs a job end to end with a key made by the CLI, over TLS, as the ACL user', async () => {
    const created = await keysCli(['create', '--tenant', 'acme']);
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.trim();
    const mare = new MareClient({ baseUrl: mareUrl, apiKey: key });
    const client = await mare.createClient({ name: 'Acme Health', industry: 'Healthcare' });
    await mare.createValueProposition(client.id, {
      content: 'Fewer readmissions',
      is_active: true,
    });
    const accepted = await mare.generateTemplates(client.id);
    const sse = await openSse(
      `${mareUrl}/v1/triton/jobs/${accepted.job_id}/subscribe?token=${accepted.stream_token ?? ''}`,
    );
    await sse.ended;
    expect(payloads<Event>(sse).at(-1)?.status).toBe('completed');
    expect((await mare.getJob(accepted.job_id)).template_count).toBe(7);

    // Every connection the parts hold is the ACL user's, over the TLS port: there is no other.
    const admin = new Redis(redisUrl, { tls: { ca: readFileSync(caFile) } });
    try {
      const clients = (await admin.client('LIST')) as string;
      const lines = clients.trim().split('\n');
      expect(lines.length).toBeGreaterThan(3);
      for (const line of lines) expect(line).toContain(`user=${USER}`);
      expect(await admin.exists(`tls:{triton:auth}:keys`)).toBe(1);
    } finally {
      admin.disconnect();
    }
  });

  it('a wrong password is refused, and no password reaches any output', async () => {
    const wrong = `rediss://${USER}:not-the-password@127.0.0.1:${tlsPort}`;
    const refused = await keysCli(['list'], { REDIS_URL: wrong });
    expect(refused.code).toBe(1);
    expect(refused.stderr).not.toContain('not-the-password');
    const output = parts.map((p) => `${p.lines.join('\n')}\n${p.output}`).join('\n');
    expect(output).toContain('Auth: on');
    expect(output).toContain(`rediss://${USER}:***@127.0.0.1:${tlsPort}`);
    expect(output).not.toContain(PASSWORD);
  });
});
