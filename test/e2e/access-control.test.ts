import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MareClient, type AllJobsWatchItem } from '../../src/client/index.js';
import { startMare, type MareService } from '../../src/mare/mare-service.js';
import { createLogger } from '../../src/common/logger.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import { readmeSnippet } from '../helpers/readme-snippet.js';
import { http } from '../helpers/system.js';
import { seedTenant, startAuthSystem, type AuthSystem, type Tenant } from '../helpers/tenants.js';
import { waitFor } from '../helpers/wait.js';
import type { EventData as Event } from '../helpers/events.js';

/**
 * Access control with AUTH=on, beyond the matrix of statuses: revocation reaching every
 * gateway, identity headers nobody but mare-api may set, each tenant's live all-jobs stream,
 * stream tokens that expire under an open stream and are renewed by the typed client, the
 * command line with a key, and a property: mutated keys and tokens never get a 5xx, nor a byte
 * of another tenant's.
 */

const BIN = path.resolve(import.meta.dirname, '../../bin/triton-events.mjs');

let auth: AuthSystem;
let acme: Tenant;
let beta: Tenant;
let adminKey: string;
/** A second gateway on the same Redis and triton-api, whose pages may come from one origin. */
let secondGateway: MareService;
const APP_ORIGIN = 'https://app.example.com';

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  auth = await startAuthSystem({ env: { SSE_RETRY_MS: '100' } });
  acme = await seedTenant(auth, 'acme');
  beta = await seedTenant(auth, 'beta');
  adminKey = (await auth.keys.create({ tenant: 'ops', admin: true })).key;
  const { config } = auth.system;
  secondGateway = await startMare({
    common: { ...config.common, corsOrigins: [APP_ORIGIN] },
    mare: { ...config.mare, tritonApiUrl: auth.system.tritonUrl },
    logger: createLogger(config.common),
    port: 0,
  });
}, 60_000);

afterAll(async () => {
  await secondGateway?.close();
  await auth?.close();
});

/** Whether the gateway refuses to open a stream with this token now (HEAD: headers only). */
async function refused(token: string): Promise<true | undefined> {
  const url = `${auth.system.mareUrl}/v1/triton/events?token=${encodeURIComponent(token)}`;
  return (await http('HEAD', url)).status === 401 ? true : undefined;
}

/** Every event a stream has received so far, decoded. */
const eventsOf = (sse: Awaited<ReturnType<typeof openSse>>) => payloads<Event>(sse);

describe('keys', () => {
  it('a revoked key stops working within seconds on every gateway and on triton-api', async () => {
    const { key, info } = await auth.keys.create({ tenant: acme.name });
    const places = [
      `${auth.system.mareUrl}/v1/triton/jobs/${acme.jobId}`,
      `${secondGateway.url}/v1/triton/jobs/${acme.jobId}`,
      `${auth.system.tritonUrl}/jobs/${acme.jobId}`,
    ];
    for (const url of places)
      expect((await http('GET', url, undefined, bearer(key))).status).toBe(200);
    const revokedAt = Date.now();
    await auth.keys.revoke(info.id);
    for (const url of places) {
      await waitFor(`${url} to refuse the revoked key`, async () =>
        (await http('GET', url, undefined, bearer(key))).status === 401 ? true : undefined,
      );
    }
    // Each process trusts what it read of a key for 3 s: a generous bound for a busy machine.
    expect(Date.now() - revokedAt).toBeLessThan(10_000);
  });

  it('identity headers count only from mare-api: a client that sends them is who its key says', async () => {
    const claims = { 'x-triton-tenant': acme.name, 'x-triton-admin': 'true' };
    const direct = await http(
      'GET',
      `${auth.system.tritonUrl}/jobs/${acme.jobId}`,
      undefined,
      claims,
    );
    expect(direct.status).toBe(401);
    const withKey = await http('GET', `${auth.system.tritonUrl}/jobs/${acme.jobId}`, undefined, {
      ...claims,
      ...bearer(beta.key),
    });
    expect(withKey.status).toBe(404);
    const wrongSecret = await http('GET', `${auth.system.tritonUrl}/clients/`, undefined, {
      ...claims,
      'x-gateway-secret': 'not-the-gateway-secret',
    });
    expect(wrongSecret.status).toBe(401);
    const throughMare = await http(
      'GET',
      `${auth.system.mareUrl}/v1/triton/jobs/${acme.jobId}/templates`,
      undefined,
      { ...claims, ...bearer(beta.key) },
    );
    expect(throughMare.status).toBe(404);
    const list = await http<{ clients: { id: string }[] }>(
      'GET',
      `${auth.system.mareUrl}/v1/triton/clients`,
      undefined,
      { ...claims, ...bearer(beta.key) },
    );
    expect(list.body.clients.map((c) => c.id)).toEqual([beta.clientId]);
  });

  it('the command line submits and follows a job with TRITON_EVENTS_KEY', async () => {
    const child = spawn(
      process.execPath,
      [BIN, 'submit', acme.clientId, '--watch', '--no-templates', '--url', auth.system.mareUrl],
      {
        env: { PATH: process.env.PATH ?? '', TRITON_EVENTS_KEY: acme.key },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/completed: 7 templates/);

    const refused = spawn(
      process.execPath,
      [BIN, 'watch', acme.jobId, '--url', auth.system.mareUrl],
      {
        env: { PATH: process.env.PATH ?? '', TRITON_EVENTS_KEY: beta.key },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let refusal = '';
    refused.stderr.on('data', (c: Buffer) => (refusal += c.toString()));
    expect(await new Promise((resolve) => refused.once('exit', resolve))).toBe(1);
    expect(refusal).toContain('JOB_NOT_FOUND');
  });
});

describe('the perimeter', () => {
  it('lets only the listed origins read answers, alike from the router, the cached-lookup fast path and streams', async () => {
    const gateway = secondGateway.url;
    const { stream_token: token } = await acme.mare.createStreamToken(acme.jobId);
    const answers = async (origin: string) => {
      const from = { origin };
      const preflight = await fetch(`${gateway}/v1/triton/clients`, {
        method: 'OPTIONS',
        headers: {
          ...from,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'authorization',
        },
      });
      const routed = await http('GET', `${gateway}/v1/triton/clients`, undefined, {
        ...from,
        ...bearer(acme.key),
      });
      // The first lookup teaches this gateway the key; the second is answered before routing.
      await http('GET', `${gateway}/v1/triton/jobs/${acme.jobId}`, undefined, bearer(acme.key));
      const cached = await http('GET', `${gateway}/v1/triton/jobs/${acme.jobId}`, undefined, {
        ...from,
        ...bearer(acme.key),
      });
      expect(cached.headers.get('x-cache')).toBe('hit');
      const stream = await openSse(
        `${gateway}/v1/triton/jobs/${acme.jobId}/subscribe?token=${token}`,
        {
          headers: from,
        },
      );
      await stream.ended;
      return [preflight.headers, routed.headers, cached.headers, stream.headers].map((h) =>
        h.get('access-control-allow-origin'),
      );
    };
    expect(await answers(APP_ORIGIN)).toEqual([APP_ORIGIN, APP_ORIGIN, APP_ORIGIN, APP_ORIGIN]);
    expect(await answers('https://evil.example.com')).toEqual([null, null, null, null]);
    // With AUTH=on and no CORS_ORIGINS, no origin may.
    const none = await http('GET', `${auth.system.mareUrl}/v1/triton/clients`, undefined, {
      origin: APP_ORIGIN,
      ...bearer(acme.key),
    });
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('says the security headers on every answer of both APIs: routed, refused, cached, streamed', async () => {
    const mare = auth.system.mareUrl;
    const { stream_token: token } = await acme.mare.createStreamToken(acme.jobId);
    const stream = await openSse(`${mare}/v1/triton/jobs/${acme.jobId}/subscribe?token=${token}`);
    await stream.ended;
    const all = [
      (await http('GET', `${mare}/v1/triton/jobs/${acme.jobId}`, undefined, bearer(acme.key)))
        .headers,
      (await http('GET', `${mare}/v1/triton/clients`)).headers,
      (await http('GET', `${mare}/no/such/route`, undefined, bearer(acme.key))).headers,
      (await http('GET', `${mare}/`)).headers,
      (await http('GET', `${auth.system.tritonUrl}/clients/`, undefined, bearer(acme.key))).headers,
      (await http('GET', `${auth.system.tritonUrl}/admin/queues`)).headers,
      stream.headers,
    ];
    for (const headers of all) {
      expect(headers.get('x-content-type-options')).toBe('nosniff');
      expect(headers.get('x-frame-options')).toBe('DENY');
      expect(headers.get('referrer-policy')).toBe('no-referrer');
      expect(headers.get('cross-origin-resource-policy')).toBe('same-origin');
    }
  });
});

describe("the README's tour with a key", () => {
  it('runs as written: curl and jq against both APIs, a stream token, the CLI', async () => {
    for (const tool of ['curl', 'jq']) {
      if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
        throw new Error(`${tool} is needed: run \`npm run setup:test\`, which installs it`);
      }
    }
    const script = readmeSnippet('auth-tour')
      .replaceAll('npx triton-events', `${process.execPath} ${BIN}`)
      .replaceAll('http://localhost:8000', auth.system.tritonUrl)
      .replaceAll('http://localhost:16000', auth.system.mareUrl);
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: auth.system.redis.url,
        REDIS_KEY_PREFIX: auth.system.config.common.keyPrefix,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);
    // The stream ran to the end, the lookup found the job, the CLI followed it.
    expect(stdout).toContain(': Connection closing - job completed');
    expect(stdout).toMatch(/"status": "completed"/);
    expect(stderr).toMatch(/Job [0-9a-f-]{36} completed: 7 templates/);
  });
});

describe('streams', () => {
  it("the all-jobs stream shows each tenant its own jobs as they run, and an admin every tenant's", async () => {
    const { stream_token: betaToken } = await beta.mare.createStreamToken();
    const betaFeed = await openSse(`${auth.system.mareUrl}/v1/triton/events?token=${betaToken}`);
    const adminFeed = await openSse(`${auth.system.mareUrl}/v1/triton/events`, {
      headers: bearer(adminKey),
    });
    try {
      expect(betaFeed.status).toBe(200);
      const { job_id: acmeJob } = await acme.mare.generateTemplates(acme.clientId);
      const { job_id: betaJob } = await beta.mare.generateTemplates(beta.clientId);
      const ended = (feed: typeof betaFeed, job: string) =>
        eventsOf(feed).some((e) => e.job_id === job && e.status === 'completed');
      await waitFor('both jobs on the admin feed', () =>
        ended(adminFeed, acmeJob) && ended(adminFeed, betaJob) ? true : undefined,
      );
      await waitFor("beta's job on beta's feed", () =>
        ended(betaFeed, betaJob) ? true : undefined,
      );
      expect(eventsOf(betaFeed).every((e) => e.tenant_id === beta.name)).toBe(true);
      expect(betaFeed.raw).not.toContain(acmeJob);
      expect(betaFeed.raw).not.toContain(acme.secret);
    } finally {
      betaFeed.close();
      adminFeed.close();
    }
  });

  it('a reconnection after its stream token expired goes on with a fresh one, which the typed client fetches by itself', async () => {
    const short = auth.tokens({ ttlSeconds: 2 });
    const principal = { tenant: beta.name, admin: false, keyId: beta.keyId };
    // The typed client, with a source of equally short-lived tokens.
    const issued: string[] = [];
    const mare = new MareClient({
      baseUrl: auth.system.mareUrl,
      streamToken: async () => {
        const fresh = (await short.issue(principal)).token;
        issued.push(fresh);
        return fresh;
      },
    });
    const seen: AllJobsWatchItem[] = [];
    const statuses: string[] = [];
    const watch = mare.watchAll({
      onEvent: (e) => seen.push(e),
      onStatus: (status) => statuses.push(status),
      retryMs: 100,
    });
    try {
      await waitFor('the watch to open', () => (watch.status === 'open' ? true : undefined));
      await waitFor("the watch's token to expire", () => refused(issued[0] ?? ''), {
        timeoutMs: 15_000,
        intervalMs: 250,
      });
      // Every stream is dropped: the client reconnects, is refused, fetches a token, goes on.
      auth.system.mare.hub.closeAll('retry: 100\n\n');
      await waitFor('the watch to reconnect', () =>
        statuses.lastIndexOf('open') > statuses.indexOf('reconnecting') &&
        statuses.includes('reconnecting')
          ? true
          : undefined,
      );
      const { job_id: jobId } = await beta.mare.generateTemplates(beta.clientId);
      await waitFor('the job on the reconnected watch', () =>
        seen.some((e) => 'job_id' in e && e.job_id === jobId && e.status === 'completed')
          ? true
          : undefined,
      );
      // One token for the first connection, one after the refusal: none for nothing.
      expect(issued.length).toBe(2);
    } finally {
      watch.close();
    }
  });

  it('an open stream is not cut when its token expires: it goes on receiving', async () => {
    const short = auth.tokens({ ttlSeconds: 2 });
    const { token } = await short.issue({ tenant: beta.name, admin: false, keyId: beta.keyId });
    const feed = await openSse(`${auth.system.mareUrl}/v1/triton/events?token=${token}`);
    try {
      await waitFor('the token to expire', () => refused(token), {
        timeoutMs: 15_000,
        intervalMs: 250,
      });
      const { job_id: jobId } = await beta.mare.generateTemplates(beta.clientId);
      await waitFor('the job on the stream opened before the expiry', () =>
        eventsOf(feed).some((e) => e.job_id === jobId && e.status === 'completed')
          ? true
          : undefined,
      );
    } finally {
      feed.close();
    }
  });
});

describe('mutated credentials', () => {
  /** What beta holds: its key, a token for its job, a token for its all-jobs stream. */
  let held: string[];
  /** Parts of acme's own token, which an attacker might splice into its own. */
  let acmeToken: string;

  beforeAll(async () => {
    held = [
      beta.key,
      (await beta.mare.createStreamToken(beta.jobId)).stream_token,
      (await beta.mare.createStreamToken()).stream_token,
    ];
    acmeToken = (await acme.mare.createStreamToken(acme.jobId)).stream_token;
  });

  const CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=% ';

  /** One credential of beta's, changed the ways an attacker (or a typo) would change it. */
  function mutated(): fc.Arbitrary<string> {
    const base = fc.integer({ min: 0, max: 2 }).map((i) => held[i] ?? '');
    const char = fc.constantFrom(...CHARS.split(''));
    return fc.oneof(
      fc.tuple(base, fc.nat(), char).map(([s, i, c]) => {
        const at = i % s.length;
        return s.slice(0, at) + c + s.slice(at + 1);
      }),
      fc.tuple(base, fc.nat()).map(([s, i]) => s.slice(0, i % s.length)),
      fc.tuple(base, fc.nat(), char).map(([s, i, c]) => {
        const at = i % (s.length + 1);
        return s.slice(0, at) + c + s.slice(at);
      }),
      base.map((s) => (s.startsWith('tek_') ? s.toUpperCase() : s.split('').reverse().join(''))),
      // Beta's token with acme's claims: header and signature of one, payload of the other.
      fc.integer({ min: 1, max: 2 }).map((i) => {
        const [header, , signature] = (held[i] ?? '').split('.');
        return `${header}.${acmeToken.split('.')[1]}.${signature}`;
      }),
      // An unsigned token claiming acme as admin.
      fc.constant(
        `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(
          JSON.stringify({
            sub: acme.name,
            adm: true,
            key: acme.keyId,
            aud: 'triton-events/stream',
            exp: 4e9,
          }),
        ).toString('base64url')}.`,
      ),
      // acme's key id with beta's secret.
      fc.constant(`tek_${acme.key.slice(4, 16)}_${beta.key.slice(17)}`),
      fc.string({ unit: char, maxLength: 120 }),
    );
  }

  /** Requests about acme's records, with the credential where each route takes one. */
  function requests(credential: string): Array<{ url: string; headers: Record<string, string> }> {
    const q = encodeURIComponent(credential);
    const header = /^[\x20-\x7e]*$/.test(credential) ? bearer(credential.trim() || 'x') : {};
    const mare = auth.system.mareUrl;
    return [
      { url: `${mare}/v1/triton/jobs/${acme.jobId}`, headers: header },
      { url: `${mare}/v1/triton/jobs/${acme.jobId}/subscribe?token=${q}`, headers: {} },
      { url: `${mare}/v1/triton/jobs/${acme.jobId}/subscribe`, headers: header },
      { url: `${mare}/v1/triton/events?history=1000&token=${q}`, headers: {} },
      { url: `${mare}/v1/triton/events?history=1000`, headers: header },
      { url: `${mare}/v1/triton/clients`, headers: header },
      { url: `${auth.system.tritonUrl}/jobs/${acme.jobId}/templates`, headers: header },
      { url: `${auth.system.tritonUrl}/templates/${acme.templateId}`, headers: header },
    ];
  }

  it('never get a 5xx, nor anything of another tenant', async () => {
    const marks = [
      acme.secret,
      acme.clientName,
      acme.templateId,
      acme.propositionId,
      acme.clientId,
    ];
    await fc.assert(
      fc.asyncProperty(mutated(), fc.nat(), async (credential, pick) => {
        const all = requests(credential);
        const { url, headers } = all[pick % all.length] ?? all[0]!;
        const controller = new AbortController();
        const response = await fetch(url, { headers, signal: controller.signal });
        let text = '';
        const reader = response.body?.getReader();
        const decoder = new TextDecoder();
        // A stream that opened (beta's own, for a credential the mutation left valid) is read
        // through its opening only.
        while (reader) {
          const { done, value } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
          if (/^retry: /m.test(text)) break;
        }
        controller.abort();
        expect(response.status, `${url} → ${text.slice(0, 200)}`).toBeLessThan(500);
        for (const mark of marks) {
          if (url.includes(mark)) continue;
          expect(text, `${url} leaked ${mark}`).not.toContain(mark);
        }
        expect(text).not.toContain(acme.key);
        if (credential.length > 8) expect(text).not.toContain(credential);
      }),
      { numRuns: 500 },
    );
  }, 120_000);
});
