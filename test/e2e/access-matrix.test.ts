import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeTable, type HttpApp } from '../../src/common/http.js';
import { ErrorBody } from '../../src/contract/index.js';
import { StreamTokens } from '../../src/mare/stream-tokens.js';
import {
  seedTenant,
  startAuthSystem,
  unknownKey,
  type AuthSystem,
  type Tenant,
} from '../helpers/tenants.js';

/**
 * With AUTH=on, every route of both APIs, as their route tables list them (a route added later
 * is in this matrix, or fails it for want of an expected status), is called about tenant
 * "acme"'s records with no key, a key no one was given, acme's revoked key, another tenant's
 * key, acme's own and an admin's; and each stream with no token, a forged, an expired and another
 * job's token, and its own. Each answer has the exact expected status, and nothing of acme's
 * (names, text, ids the request did not name) in any answer to someone else.
 */

const METRICS_TOKEN = 'metrics-token-for-the-matrix';

type Credential = 'none' | 'bad' | 'revoked' | 'other' | 'own' | 'admin';
const CREDENTIALS: readonly Credential[] = ['none', 'bad', 'revoked', 'other', 'own', 'admin'];

/** Who may call a route, and what each caller that gets past the door is answered. */
type Rule =
  | { access: 'public'; status: number }
  | { access: 'metrics' }
  | { access: 'preflight' }
  | { access: 'optional' }
  | { access: 'key' | 'stream'; own: number; other: number; admin: number }
  | { access: 'admin'; admin: number };

let auth: AuthSystem;
let acme: Tenant;
let beta: Tenant;
let revokedKey: string;
let adminKey: string;
const badKey = unknownKey();

const same = (status: number) => ({ own: status, other: status, admin: status });
const owned = (status: number) => ({ own: status, other: 404, admin: status });

/**
 * The expected answers of every API route (HEAD answers as GET does). Documentation, health,
 * the dashboard's files and the queue UI follow from their paths below.
 */
const API_RULES: Record<string, Rule> = {
  'triton GET /clients/': { access: 'key', ...same(200) },
  'triton POST /clients/': { access: 'key', ...same(201) },
  'triton GET /clients/:client_id': { access: 'key', ...owned(200) },
  'triton POST /clients/:client_id/value-propositions': { access: 'key', ...owned(201) },
  'triton GET /clients/:client_id/value-propositions': { access: 'key', ...owned(200) },
  'triton GET /clients/:client_id/templates': { access: 'key', ...owned(200) },
  'triton POST /clients/:client_id/generate-templates': { access: 'key', ...owned(202) },
  'triton GET /jobs/:job_id': { access: 'key', ...owned(200) },
  // The job has finished: it cannot be cancelled, which only its own tenant may learn.
  'triton POST /jobs/:job_id/cancel': { access: 'key', ...owned(409) },
  'triton GET /jobs/:job_id/templates': { access: 'key', ...owned(200) },
  'triton GET /templates/:template_id': { access: 'key', ...owned(200) },
  'mare POST /v1/triton/clients/:client_id/generate-templates': { access: 'key', ...owned(202) },
  'mare GET /v1/triton/jobs/:job_id': { access: 'key', ...owned(200) },
  'mare POST /v1/triton/jobs/:job_id/cancel': { access: 'key', ...owned(409) },
  'mare GET /v1/triton/jobs/:job_id/templates': { access: 'key', ...owned(200) },
  'mare GET /v1/triton/clients': { access: 'key', ...same(200) },
  'mare POST /v1/triton/clients': { access: 'key', ...same(201) },
  'mare POST /v1/triton/clients/:client_id/value-propositions': { access: 'key', ...owned(201) },
  'mare POST /v1/triton/stream-tokens': { access: 'key', ...owned(200) },
  'mare GET /v1/triton/jobs/:job_id/subscribe': { access: 'stream', ...owned(200) },
  // Every tenant has an all-jobs stream: of its own jobs.
  'mare GET /v1/triton/events': { access: 'stream', ...same(200) },
  'mare GET /v1/triton/auth': { access: 'optional' },
};

/** bull-board's API answers an admin about a queue that does not exist 404, or 400 for a bad body. */
const QUEUE_UI_BAD_BODY =
  /\/(concurrency|update-data|delay|priority)$|job-schedulers\/:schedulerId$/;

function ruleOf(api: 'triton' | 'mare', method: string, url: string): Rule {
  if (method === 'OPTIONS') return { access: 'preflight' };
  const get = method === 'HEAD' ? 'GET' : method;
  const rule = API_RULES[`${api} ${get} ${url}`];
  if (rule) return rule;
  if (url === '/metrics') return { access: 'metrics' };
  if (['/health', '/ready', '/', '/assets/app.css', '/assets/app.js'].includes(url)) {
    return { access: 'public', status: 200 };
  }
  if (url === '/docs' || url.startsWith('/docs/')) return { access: 'public', status: 200 };
  if (api === 'triton' && url.startsWith('/admin/queues')) {
    // Its pages are served for any path; its API looks the queue up.
    if (!url.includes('/api/queues/:queueName')) return { access: 'admin', admin: 200 };
    return { access: 'admin', admin: QUEUE_UI_BAD_BODY.test(url) ? 400 : 404 };
  }
  throw new Error(`${api} ${method} ${url} is in no rule of this matrix: say what it answers`);
}

function expected(rule: Rule, credential: Credential, method: string): number {
  switch (rule.access) {
    case 'public':
      return rule.status;
    case 'metrics':
      // An API key is not the metrics token, whoever's it is.
      return 401;
    case 'preflight':
      return 204;
    case 'optional':
      return credential === 'bad' || credential === 'revoked' ? 401 : 200;
    case 'admin':
      if (credential === 'other' || credential === 'own') return 403;
      return credential === 'admin' ? rule.admin : 401;
    default:
      if (credential === 'none' || credential === 'bad' || credential === 'revoked') return 401;
      // HEAD on a stream is its headers: 200 for what GET would open.
      if (method === 'HEAD' && rule.access === 'stream')
        return rule[credential] === 404 ? 404 : 200;
      return rule[credential];
  }
}

function keyOf(credential: Credential): string | undefined {
  return {
    none: undefined,
    bad: badKey,
    revoked: revokedKey,
    other: beta.key,
    own: acme.key,
    admin: adminKey,
  }[credential];
}

/** A concrete request for a route pattern, about acme's records. */
function requestFor(method: string, url: string): { path: string; body?: unknown } {
  const params: Record<string, string> = {
    client_id: acme.clientId,
    job_id: acme.jobId,
    template_id: acme.templateId,
    queueName: 'no-such-queue',
    jobId: 'no-such-job',
    queueStatus: 'failed',
    schedulerId: 'none',
  };
  let path = url.replace(/:(\w+)/g, (_m, name: string) => params[name] ?? name);
  if (path.endsWith('*')) {
    path = path.slice(0, -1) + (path.startsWith('/docs') ? 'swagger-ui.css' : 'favicon.ico');
  }
  if (path === '/v1/triton/events') path += '?history=1000';
  if (method === 'OPTIONS') path = '/clients/';
  const body =
    method === 'GET' || method === 'HEAD' || method === 'OPTIONS'
      ? undefined
      : url.endsWith('/value-propositions')
        ? { content: 'Another promise', is_active: true }
        : url.endsWith('/clients/') || url.endsWith('/clients')
          ? { name: 'A new client', industry: 'Retail' }
          : url.endsWith('/stream-tokens')
            ? { job_id: acme.jobId }
            : url.startsWith('/admin/')
              ? {}
              : undefined;
  return { path, ...(body === undefined ? {} : { body }) };
}

interface Answer {
  status: number;
  text: string;
  headers: Headers;
}

/**
 * One request. A stream is read until it ends or its opening (the `retry:` line and the replay
 * written with it) has arrived, then dropped.
 */
async function send(
  base: string,
  method: string,
  path: string,
  { key, body, headers = {} }: { key?: string; body?: unknown; headers?: Record<string, string> },
): Promise<Answer> {
  const controller = new AbortController();
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(method === 'OPTIONS'
        ? { origin: 'https://elsewhere.example', 'access-control-request-method': 'GET' }
        : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: controller.signal,
  });
  let text = '';
  if (response.body) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const stream = /^text\/event-stream/.test(response.headers.get('content-type') ?? '');
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        if (stream && /^retry: /m.test(text) && !path.includes('/subscribe')) break;
      }
    } finally {
      controller.abort();
    }
  }
  return { status: response.status, text, headers: response.headers };
}

/** acme's own things that no answer to anyone else may hold (but ids the request named). */
function foreignBytes(answer: string, request: string): string[] {
  const marks = [
    acme.secret,
    acme.clientName,
    acme.clientId,
    acme.jobId,
    acme.templateId,
    acme.propositionId,
    `"${acme.name}"`,
    acme.key,
    revokedKey,
  ];
  return marks.filter((mark) => !request.includes(mark) && answer.includes(mark));
}

interface Row {
  api: 'triton' | 'mare';
  method: string;
  url: string;
  credential: Credential;
  expected: number;
  status: number;
  leaked: string[];
  error?: string | undefined;
}

const rows: Row[] = [];

beforeAll(async () => {
  auth = await startAuthSystem({ env: { METRICS_TOKEN } });
  acme = await seedTenant(auth, `acme-${Date.now().toString(36)}`);
  beta = await seedTenant(auth, `beta-${Date.now().toString(36)}`);
  const revoked = await auth.keys.create({ tenant: acme.name });
  await auth.keys.revoke(revoked.info.id);
  revokedKey = revoked.key;
  adminKey = (await auth.keys.create({ tenant: 'ops', admin: true })).key;
}, 60_000);

afterAll(() => auth?.close());

describe('every route × every credential', () => {
  it('answers each with the exact expected status, and nobody else anything of acme', async () => {
    const apps: [api: 'triton' | 'mare', app: HttpApp, base: string][] = [
      ['triton', auth.system.triton.app as HttpApp, auth.system.tritonUrl],
      ['mare', auth.system.mare.app, auth.system.mareUrl],
    ];
    for (const [api, app, base] of apps) {
      const table = routeTable(app);
      expect(table.length).toBeGreaterThan(20);
      for (const { method, url } of table) {
        const rule = ruleOf(api, method, url);
        const { path, body } = requestFor(method, url);
        for (const credential of CREDENTIALS) {
          const key = keyOf(credential);
          const answer = await send(base, method, path, {
            ...(key === undefined ? {} : { key }),
            body,
          });
          const request = `${path} ${JSON.stringify(body ?? '')}`;
          const leaked =
            credential === 'own' || credential === 'admin'
              ? []
              : foreignBytes(answer.text, request);
          let error: string | undefined;
          if (answer.status >= 400 && method !== 'HEAD' && !url.startsWith('/admin/queues')) {
            const parsed = ErrorBody.safeParse(JSON.parse(answer.text || 'null'));
            if (!parsed.success) error = `not an error body: ${answer.text.slice(0, 100)}`;
          }
          if (answer.status === 401 && !answer.headers.get('www-authenticate')) {
            // Refusals for want of a credential say how to give one.
            if (!/another stream|all-jobs/.test(answer.text)) error = 'no WWW-Authenticate';
          }
          rows.push({
            api,
            method,
            url,
            credential,
            expected: expected(rule, credential, method),
            status: answer.status,
            leaked,
            error,
          });
        }
      }
    }
    const wrong = rows.filter((r) => r.status !== r.expected || r.leaked.length > 0 || r.error);
    expect(
      wrong.map(
        (r) =>
          `${r.api} ${r.method} ${r.url} as ${r.credential}: ${r.status} (expected ${r.expected})` +
          `${r.leaked.length ? ` leaked ${r.leaked.join(', ')}` : ''}${r.error ? ` ${r.error}` : ''}`,
      ),
    ).toEqual([]);
    // Both APIs, each with its own routes: a matrix of a few hundred calls.
    expect(rows.length).toBeGreaterThan(500);
  }, 120_000);

  it('serves /metrics to its token alone', async () => {
    for (const base of [auth.system.tritonUrl, auth.system.mareUrl]) {
      const ok = await send(base, 'GET', '/metrics', { key: METRICS_TOKEN });
      expect(ok.status).toBe(200);
      expect(ok.text).toContain('process_cpu_seconds_total');
    }
  });
});

describe('every stream × every token', () => {
  type TokenKind = 'none' | 'forged' | 'expired' | "other job's" | 'own';

  async function tokenFor(kind: TokenKind, jobId: string | undefined): Promise<string | undefined> {
    const principal = { tenant: acme.name, admin: false, keyId: acme.keyId };
    switch (kind) {
      case 'none':
        return undefined;
      case 'forged': {
        const forger = new StreamTokens({ secret: 'x'.repeat(40), keys: auth.keys });
        return (await forger.issue(principal, jobId)).token;
      }
      case 'expired': {
        const past = auth.tokens({ ttlSeconds: 60, now: () => Date.now() - 3_600_000 });
        return (await past.issue(principal, jobId)).token;
      }
      case "other job's":
        // A job's token opens that job alone: on the all-jobs stream too it is another stream's.
        return (await auth.tokens().issue(principal, jobId === undefined ? acme.jobId : beta.jobId))
          .token;
      case 'own':
        return (await auth.tokens().issue(principal, jobId)).token;
    }
  }

  it.each([
    ['/v1/triton/jobs/{job}/subscribe', true],
    ['/v1/triton/events', false],
  ])(
    '%s: 401 without a token, forged, expired or another’s; 200 with its own',
    async (route, perJob) => {
      const kinds: TokenKind[] = ['none', 'forged', 'expired', "other job's", 'own'];
      const got: Record<string, number> = {};
      for (const kind of kinds) {
        const jobId = perJob ? acme.jobId : undefined;
        const token = await tokenFor(kind, jobId);
        const base = perJob ? `/v1/triton/jobs/${acme.jobId}/subscribe` : '/v1/triton/events';
        const path = token === undefined ? base : `${base}?token=${encodeURIComponent(token)}`;
        const answer = await send(auth.system.mareUrl, 'GET', path, {});
        got[kind] = answer.status;
        if (answer.status === 401) {
          expect(answer.text).not.toContain(token ?? '\u0000');
          expect(ErrorBody.safeParse(JSON.parse(answer.text)).success).toBe(true);
        }
        if (kind === 'own' && perJob) expect(answer.text).toContain(`"job_id":"${acme.jobId}"`);
      }
      expect(got).toEqual({ none: 401, forged: 401, expired: 401, "other job's": 401, own: 200 });
    },
  );
});
