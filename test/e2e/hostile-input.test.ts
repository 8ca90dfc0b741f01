import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyspace, decodeEvent, ErrorBody, type Keyspace } from '../../src/contract/index.js';
import { PartProcess } from '../helpers/part-process.js';
import { freePort } from '../helpers/ports.js';
import { openSse, payloads, type SseConnection } from '../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import type { EventData as Event } from '../helpers/events.js';

/**
 * Hostile input, over real HTTP and real Redis. Thousands of malformed requests to both APIs
 * (bad ids, broken and oversized bodies, wrong content types, odd unicode, bad Last-Event-IDs
 * and query strings) must each get a 4xx with an `{"error": {"code", "message"}}` body, or a
 * 2xx where the input happens to be valid: never a 5xx, never silence. Thousands of malformed
 * messages on the events channels must be counted, logged and ignored, leaving the gateway
 * healthy and everything already stored as it was.
 *
 * mare-api runs as its own process, so that a crash shows as an exit and its log is readable.
 */

const REQUEST_TIMEOUT_MS = 10_000;

let system: TestSystem | undefined;
let mare: PartProcess | undefined;
let publisher: Redis | undefined;
const streams: SseConnection[] = [];
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

let mareUrl = '';
let keyspace: Keyspace = createKeyspace();
/** A client with an active proposition, and a job of its that finished before the test. */
let clientId = '';
let finishedJob = '';

beforeAll(async () => {
  system = await startSystem({
    env: { SUBMIT_RATE_LIMIT_PER_MINUTE: '0', WRITE_RATE_LIMIT_PER_MINUTE: '0' },
  });
  const sys = system;
  keyspace = createKeyspace(sys.config.common.keyPrefix);
  const port = await freePort();
  mare = await PartProcess.start(
    'src/mare/main-api.ts',
    {
      REDIS_URL: sys.redis.url,
      TRITON_API_URL: sys.tritonUrl,
      MARE_API_PORT: String(port),
      SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
      WRITE_RATE_LIMIT_PER_MINUTE: '0',
      LOG_LEVEL: 'info',
    },
    { ready: /^Server listening at/ },
  );
  mareUrl = `http://127.0.0.1:${port}`;
  publisher = new Redis(sys.redis.url, { maxRetriesPerRequest: 1 });

  clientId = await createClientWithProposition(sys.tritonUrl);
  const res = await http<{ job_id: string }>(
    'POST',
    `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  finishedJob = res.body.job_id;
  const sse = await openSse(`${mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`);
  await sse.ended;
  expect(payloads<Event>(sse).at(-1)?.status).toBe('completed');
});

afterAll(async () => {
  for (const sse of streams) sse.close();
  agent.destroy();
  publisher?.disconnect();
  await mare?.kill();
  await system?.close();
});

// ---------------------------------------------------------------------------------------------
// HTTP

/** One request as the fuzzer builds it. */
interface Attempt {
  method: string;
  /** Sent as is: already percent-encoded, or deliberately not. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** The test knows this input is invalid: it must be refused (4xx), never streamed. */
  mustRefuse?: boolean;
}

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

function describeAttempt(a: Attempt): string {
  const body =
    a.body === undefined
      ? ''
      : ` body(${a.body.length})=${JSON.stringify(a.body.toString().slice(0, 120))}`;
  return `${a.method} ${JSON.stringify(a.path.slice(0, 300))} ${JSON.stringify(a.headers ?? {})}${body}`;
}

/**
 * Sends one request over a real socket, with a deadline. An SSE response (a valid request) is
 * closed as soon as its headers arrive. A kept-alive socket the server closed in the meantime
 * is retried once on a new one, as HTTP clients do.
 */
function send(base: string, a: Attempt, retried = false): Promise<Answer> {
  const url = new URL(base);
  return new Promise<Answer>((resolve, reject) => {
    let answered = false;
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: a.method,
        path: a.path,
        agent,
        headers: {
          ...a.headers,
          ...(a.body === undefined ? {} : { 'content-length': Buffer.byteLength(a.body) }),
        },
      },
      (res) => {
        const contentType = String(res.headers['content-type'] ?? '');
        const status = res.statusCode ?? 0;
        if (contentType.startsWith('text/event-stream')) {
          answered = true;
          res.destroy();
          resolve({ status, contentType, body: '' });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          answered = true;
          resolve({ status, contentType, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => (answered ? undefined : reject(err)));
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) return;
      if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
        send(base, a, true).then(resolve, reject);
        return;
      }
      reject(new Error(`${describeAttempt(a)}: ${err.message}`));
    });
    if (a.body !== undefined) req.write(a.body);
    req.end();
  });
}

/** The property every answer has: a 2xx, or a 4xx in the house error shape; never a 5xx. */
function expectWellBehaved(a: Attempt, r: Answer): void {
  const what = `${describeAttempt(a)} → ${r.status} ${r.contentType} ${r.body.slice(0, 200)}`;
  expect(r.status, what).toBeGreaterThanOrEqual(200);
  expect(r.status, what).toBeLessThan(500);
  expect(r.status >= 300 && r.status < 400, what).toBe(false);
  if (a.mustRefuse) expect(r.status, what).toBeGreaterThanOrEqual(400);
  // A HEAD answer has headers only.
  if (r.status >= 400 && a.method !== 'HEAD') {
    expect(r.contentType, what).toMatch(/^application\/json/);
    let body: unknown;
    try {
      body = JSON.parse(r.body);
    } catch {
      body = r.body;
    }
    expect(ErrorBody.safeParse(body).success, what).toBe(true);
  }
}

/** Every answer seen, by status and code: what the fuzzer reached. */
const seen = new Map<string, number>();
let requestsSent = 0;

/** Jobs the fuzzer's valid submissions created. */
const submittedJobs: string[] = [];

async function check(base: string, a: Attempt): Promise<void> {
  const answer = await send(base, a);
  requestsSent++;
  expectWellBehaved(a, answer);
  if (answer.status === 202)
    submittedJobs.push((JSON.parse(answer.body) as { job_id: string }).job_id);
  const code =
    answer.status >= 400 && a.method !== 'HEAD'
      ? (JSON.parse(answer.body) as ErrorBody).error.code
      : 'ok';
  const key = `${answer.status} ${code}`;
  seen.set(key, (seen.get(key) ?? 0) + 1);
}

// --- arbitraries ---------------------------------------------------------------------------

/** Characters that break naive code: NUL, bidi controls, BOM, joiners, combining marks, emoji, lone surrogates. */
const oddChar = fc.oneof(
  fc.constantFrom(
    '\u0000',
    '\u0001',
    '\u202e',
    '\u200f',
    '\u061c',
    '\ufeff',
    '\u200b',
    '\u200d',
    '\u0301',
    '\u0336',
    '\u0489',
    '😀',
    '👩‍👩‍👧‍👦',
    '🏳️‍🌈',
    '\uffff',
    '\ufffe',
    '\u2028',
    '\u2029',
    '\r',
    '\n',
    '\t',
    '"',
    '\\',
    '<',
    '%',
    '/',
    '.',
    ':',
    '?',
    '#',
  ),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);

const oddText = fc.oneof(
  fc.string({ unit: oddChar, maxLength: 40 }),
  fc
    .tuple(fc.string({ maxLength: 20 }), fc.string({ unit: oddChar, maxLength: 5 }))
    .map(([a, b]) => a + b),
  fc.string({ unit: 'grapheme', maxLength: 60 }),
  fc.constantFrom('', ' ', ' \t\n ', 'Acme', 'x'.repeat(201), 'x'.repeat(5001)),
  fc.string({ unit: oddChar, minLength: 190, maxLength: 260 }),
);

/** A field value: usually text, sometimes the wrong type altogether. */
const fieldValue = fc.oneof(
  { weight: 6, arbitrary: oddText },
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(oddText, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), oddText, { maxKeys: 3 }),
);

const clientBody = fc
  .record({ name: fieldValue, industry: fieldValue, extra: fieldValue }, { requiredKeys: [] })
  .map((o) => JSON.stringify(o));

const propositionBody = fc
  .record(
    {
      content: fieldValue,
      is_active: fc.oneof(fc.boolean(), fieldValue),
      extra: fieldValue,
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));

/** Text a route would take, but odd: it reaches the database and the worker's generator. */
const plausibleText = (max: number) =>
  fc.oneof(
    fc.string({ unit: oddChar, minLength: 1, maxLength: max }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: max }),
    fc.string({ unit: 'binary', minLength: 1, maxLength: max }),
  );
const plausibleClient = fc
  .record({ name: plausibleText(200), industry: plausibleText(100) })
  .map((o) => JSON.stringify(o));
const plausibleProposition = fc
  .record({ content: plausibleText(400), is_active: fc.boolean() })
  .map((o) => JSON.stringify(o));

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

/** Bodies that are not JSON, not whole, not small, or not what any route wants. */
const brokenBody: fc.Arbitrary<string | Buffer> = fc.oneof(
  { weight: 8, arbitrary: clientBody.chain((s) => fc.nat(s.length).map((n) => s.slice(0, n))) },
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 8, arbitrary: fc.json({ maxDepth: 4 }) },
  // Larger than BODY_LIMIT_BYTES (64 KiB by default).
  fc
    .integer({ min: 70_000, max: 400_000 })
    .map((n) => JSON.stringify({ name: 'x'.repeat(n), industry: 'y' })),
  {
    weight: 8,
    arbitrary: fc.constantFrom<string | Buffer>(
      '{',
      '[',
      '{"name":',
      'null',
      'true',
      '"text"',
      '1e999',
      '-0',
      '[]',
      '{}',
      '\ufeff{"name":"a","industry":"b"}',
      '{"__proto__":{"polluted":1},"name":"a","industry":"b"}',
      '{"constructor":{"prototype":{"polluted":1}},"name":"a","industry":"b"}',
      '{"name":"a","name":"b","industry":"c"}',
      '{"name":"\\ud800","industry":"\\udfff"}',
      '{"name":"a\\u0000b","industry":"c"}',
      '{"content":"\\ud83d","is_active":true}',
      Buffer.concat([
        Buffer.from('{"name":"'),
        Buffer.from([0xff, 0xfe, 0xc0]),
        Buffer.from('","industry":"x"}'),
      ]),
      deep(20_000),
      `{"a":${deep(10_000)}}`,
    ),
  },
);

const contentType = fc.oneof(
  { weight: 2, arbitrary: fc.constant('application/json') },
  fc.constant(undefined),
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'APPLICATION/JSON',
    'application/json;charset=utf-16le',
    'application/json; boundary=x; charset="utf-8"',
    'application/jsonp',
    'application/merge-patch+json',
    'text/plain',
    'text/html; charset=iso-8859-1',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=xyz',
    'application/octet-stream',
    '*/*',
    '',
    ';;;',
    'application/json\u00e9',
  ),
);

/** Percent-encodes UTF-8 bytes of `s` (a lone surrogate becomes U+FFFD, as TextEncoder does). */
function encodeSegment(s: string): string {
  return [...Buffer.from(s, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
}

/** Ids that are not UUIDs, written into a path the ways a hostile client might. */
const badIdSegment = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.string({ unit: oddChar, minLength: 1, maxLength: 40 }).map(encodeSegment),
  },
  { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 60 }).map(encodeSegment) },
  // Raw, unencoded: whatever a socket may carry in a request line (latin-1 bytes, no spaces).
  fc
    .string({
      unit: fc.integer({ min: 0x21, max: 0xff }).map((c) => String.fromCharCode(c)),
      minLength: 1,
      maxLength: 40,
    })
    // A segment that starts a query or a fragment is no segment: `/clients/?x` is the list.
    .filter((s) => !s.startsWith('?') && !s.startsWith('#')),
  fc.constantFrom(
    '..',
    '.',
    '..%2F..',
    '%2e%2e',
    '..%2F..%2Fetc%2Fpasswd',
    '%2F',
    '%5C',
    '%00',
    '%',
    '%zz',
    '%C0%AF',
    '%ED%A0%80',
    '%E2%80%AE',
    '%F0%9F%98%80',
    'null',
    '-1',
    ':job_id',
    '*',
    '00000000-0000-0000-0000-00000000000g',
    '{3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f}',
    '3f2b8c1e4d5a4b6c9e7f0a1b2c3d4e5f',
  ),
  fc.uuid().map((u) => encodeSegment(`${u}x`)),
  fc.uuid().map((u) => encodeSegment(` ${u}`)),
  fc.uuid().map((u) => `${u}%00`),
  fc.uuid().map((u) => `${u.slice(0, 8)}%2F${u.slice(9)}`),
  // Longer than any id; the longest, past Node's 16 KiB header limit.
  fc.oneof(
    { weight: 9, arbitrary: fc.integer({ min: 201, max: 12_000 }).map((n) => 'a'.repeat(n)) },
    { weight: 1, arbitrary: fc.constant('b'.repeat(20_000)) },
  ),
);

/** A path segment where an id goes: usually a bad one, sometimes a real or a random UUID. */
function idSegment(known: string[]): fc.Arbitrary<{ segment: string; bad: boolean }> {
  return fc.oneof(
    { weight: 5, arbitrary: badIdSegment.map((segment) => ({ segment, bad: true })) },
    fc.constantFrom(...known).map((segment) => ({ segment, bad: false })),
    fc.uuid().map((segment) => ({ segment, bad: false })),
    fc.uuid().map((segment) => ({ segment: segment.toUpperCase(), bad: false })),
  );
}

const queryValue = fc.oneof(
  fc.constantFrom(
    '-1',
    '0',
    '1',
    '1000',
    '1001',
    '99999',
    '1e3',
    '1.5',
    '0x10',
    'NaN',
    'Infinity',
    '',
    'abc',
    '%zz',
    '%00',
    '9'.repeat(400),
    '%E2%80%AE1',
  ),
  fc.string({ maxLength: 20 }).map(encodeSegment),
  fc.integer().map(String),
);

/** `?limit=…&offset=…&history=…` in every combination, duplicated keys included. */
const queryString = fc
  .array(
    fc.tuple(
      fc.constantFrom(
        'limit',
        'offset',
        'history',
        'last_event_id',
        'x',
        '%zz',
        '',
        '__proto__',
        'constructor',
        'limit[]',
        'offset[__proto__]',
      ),
      queryValue,
    ),
    { maxLength: 4 },
  )
  .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));

/** A header value Node can send (latin-1, no control characters). */
const headerSafe = fc.string({
  unit: fc
    .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }))
    .map((c) => String.fromCharCode(c)),
  maxLength: 60,
});

/** Last-Event-ID values, with whether the job stream (seq) and the all-jobs stream ({job}:{seq}) accept them. */
const lastEventId = fc.oneof(
  headerSafe,
  fc.constantFrom(
    '-1',
    '0',
    '1',
    '1.5',
    '1e5',
    '0x1',
    '+1',
    ' 2 ',
    '999999999999999999999',
    '9'.repeat(16),
    'null',
    ':',
    'x'.repeat(10_000),
  ),
  fc.uuid().map((u) => `${u}:0`),
  fc.uuid().map((u) => `${u}:-1`),
  fc.uuid().map((u) => `${u}:abc`),
  fc.uuid().map((u) => `${u}:${2 ** 60}`),
  fc.uuid().map((u) => `${u}:1:2`),
  fc.uuid().map((u) => `${u.slice(0, 35)}:1`),
  fc.uuid().map((u) => `${u}:1`),
);
const seqIsValid = (v: string) => /^\d{1,15}$/.test(v.trim()) || v.trim() === '';
const globalIdIsValid = (v: string) =>
  v.trim() === '' || /^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}:[1-9]\d{0,15}$/i.test(v.trim());

function withBody(
  a: Attempt,
  body: string | Buffer | undefined,
  type: string | undefined,
): Attempt {
  return {
    ...a,
    ...(body === undefined ? {} : { body }),
    headers: { ...a.headers, ...(type === undefined ? {} : { 'content-type': type }) },
  };
}

/** Headers the routing, CORS and content negotiation look at, with odd values. */
const oddHeaders: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    'accept-version': fc.oneof(headerSafe, fc.constantFrom('1.0.0', '*', 'x.y.z', '>=1')),
    host: fc.oneof(headerSafe, fc.constantFrom('', 'evil.example:99999', '[::1', 'a'.repeat(300))),
    accept: fc.oneof(
      headerSafe,
      fc.constantFrom('text/event-stream', '*/*;q=abc', 'application/xml'),
    ),
    'accept-encoding': fc.constantFrom('gzip', 'br;q=2', 'identity;q=0', '*'),
    origin: fc.oneof(headerSafe, fc.constantFrom('null', 'http://evil.example')),
    'access-control-request-method': fc.oneof(headerSafe, fc.constant('DELETE')),
    'access-control-request-headers': headerSafe,
    'x-forwarded-for': headerSafe,
    expect: fc.constantFrom('100-continue', 'nonsense'),
  },
  { requiredKeys: [] },
);

/** Adds odd headers to one request in four. */
function withOddHeaders(attempts: fc.Arbitrary<Attempt>): fc.Arbitrary<Attempt> {
  return fc
    .tuple(attempts, fc.option(oddHeaders, { freq: 3, nil: undefined }))
    .map(([a, extra]) => (extra ? { ...a, headers: { ...extra, ...a.headers } } : a));
}

/** Well-formed writes with odd text, and submissions for the client they change. */
function plausibleWrites(clientsPath: string, clientPath: string): Array<fc.Arbitrary<Attempt>> {
  const json = { 'content-type': 'application/json' };
  return [
    plausibleClient.map((body) => ({ method: 'POST', path: clientsPath, headers: json, body })),
    plausibleProposition.map((body) => ({
      method: 'POST',
      path: `${clientPath}/value-propositions`,
      headers: json,
      body,
    })),
    fc.constant({ method: 'POST', path: `${clientPath}/generate-templates` }),
  ];
}

/** Requests to mare-api's routes. */
function mareAttempts(): fc.Arbitrary<Attempt> {
  const known = [clientId, finishedJob];
  const id = idSegment(known);
  const anyBody = fc.oneof(clientBody, propositionBody, brokenBody);
  return fc.oneof(
    fc
      .tuple(id, fc.constantFrom('', '/templates'), queryString)
      .map(([{ segment, bad }, tail, q]) => ({
        method: 'GET',
        path: `/v1/triton/jobs/${segment}${tail}${q}`,
        mustRefuse: bad,
      })),
    fc
      .tuple(id, fc.option(anyBody, { nil: undefined }), contentType)
      .map(([{ segment, bad }, body, type]) =>
        withBody(
          {
            method: 'POST',
            path: `/v1/triton/clients/${segment}/generate-templates`,
            mustRefuse: bad,
          },
          body,
          type,
        ),
      ),
    fc.tuple(queryString).map(([q]) => ({ method: 'GET', path: `/v1/triton/clients${q}` })),
    fc
      .tuple(fc.oneof(clientBody, brokenBody), contentType)
      .map(([body, type]) => withBody({ method: 'POST', path: '/v1/triton/clients' }, body, type)),
    fc
      .tuple(id, fc.oneof(propositionBody, brokenBody), contentType)
      .map(([{ segment, bad }, body, type]) =>
        withBody(
          {
            method: 'POST',
            path: `/v1/triton/clients/${segment}/value-propositions`,
            mustRefuse: bad,
          },
          body,
          type,
        ),
      ),
    // SSE: a job's stream. A bad id or Last-Event-ID is refused before any stream opens.
    fc
      .tuple(id, fc.option(lastEventId, { nil: undefined }), fc.boolean())
      .map(([{ segment, bad }, last, inQuery]) => {
        const query = last !== undefined && inQuery ? `?last_event_id=${encodeSegment(last)}` : '';
        const header: Record<string, string> =
          last !== undefined && !inQuery ? { 'last-event-id': last } : {};
        const badLast = last !== undefined && (!seqIsValid(last) || (inQuery && last.length > 200));
        return {
          method: 'GET',
          path: `/v1/triton/jobs/${segment}/subscribe${query}`,
          headers: { accept: 'text/event-stream', ...header },
          mustRefuse: bad || badLast,
        };
      }),
    // SSE: the all-jobs stream.
    fc
      .tuple(fc.option(lastEventId, { nil: undefined }), fc.boolean(), queryString)
      .map(([last, inQuery, q]) => {
        const lastQuery =
          last !== undefined && inQuery ? `last_event_id=${encodeSegment(last)}` : '';
        const query = [q.replace(/^\?/, ''), lastQuery].filter(Boolean).join('&');
        const header: Record<string, string> =
          last !== undefined && !inQuery ? { 'last-event-id': last } : {};
        const badLast =
          last !== undefined && (!globalIdIsValid(last) || (inQuery && last.length > 200));
        return {
          method: 'GET',
          path: `/v1/triton/events${query ? `?${query}` : ''}`,
          headers: { accept: 'text/event-stream', ...header },
          mustRefuse: badLast,
        };
      }),
    // Well-formed but odd records: stored, then used by the jobs submitted for the client.
    ...plausibleWrites('/v1/triton/clients', `/v1/triton/clients/${clientId}`),
    // Anything else: odd methods, unknown paths.
    fc
      .tuple(
        fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'POST'),
        fc.constantFrom(
          '/',
          '/v1',
          '/v1/triton',
          '/v1/triton/jobs',
          '/v1/triton/jobs/',
          '//',
          '/%2e%2e/metrics',
          '/v1/triton/../../health',
        ),
        fc.option(brokenBody, { nil: undefined }),
        contentType,
      )
      .map(([method, path, body, type]) => withBody({ method, path }, body, type)),
  );
}

/** Requests to triton-api's routes. */
function tritonAttempts(): fc.Arbitrary<Attempt> {
  const id = idSegment([clientId, finishedJob]);
  return fc.oneof(
    fc.tuple(queryString).map(([q]) => ({ method: 'GET', path: `/clients/${q}` })),
    fc
      .tuple(fc.oneof(clientBody, brokenBody), contentType)
      .map(([body, type]) => withBody({ method: 'POST', path: '/clients/' }, body, type)),
    fc
      .tuple(id, fc.constantFrom('', '/value-propositions', '/templates'), queryString)
      .map(([{ segment, bad }, tail, q]) => ({
        method: 'GET',
        path: `/clients/${segment}${tail}${q}`,
        mustRefuse: bad,
      })),
    fc
      .tuple(id, fc.oneof(propositionBody, brokenBody), contentType)
      .map(([{ segment, bad }, body, type]) =>
        withBody(
          { method: 'POST', path: `/clients/${segment}/value-propositions`, mustRefuse: bad },
          body,
          type,
        ),
      ),
    fc
      .tuple(id, fc.option(brokenBody, { nil: undefined }), contentType)
      .map(([{ segment, bad }, body, type]) =>
        withBody(
          { method: 'POST', path: `/clients/${segment}/generate-templates`, mustRefuse: bad },
          body,
          type,
        ),
      ),
    fc
      .tuple(id, fc.constantFrom('/jobs/', '/templates/'), fc.constantFrom('', '/templates'))
      .map(([{ segment, bad }, head, tail]) => ({
        method: 'GET',
        path: `${head}${segment}${head === '/jobs/' ? tail : ''}`,
        mustRefuse: bad,
      })),
    ...plausibleWrites('/clients/', `/clients/${clientId}`),
    fc
      .tuple(
        fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'POST'),
        fc.constantFrom(
          '/',
          '/clients',
          '/jobs',
          '/jobs/',
          '//clients//',
          '/%2e%2e/ready',
          '/clients/../metrics',
        ),
        fc.option(brokenBody, { nil: undefined }),
        contentType,
      )
      .map(([method, path, body, type]) => withBody({ method, path }, body, type)),
  );
}

describe('malformed HTTP requests', () => {
  it(
    'mare-api answers every one with a 4xx error body (or a 2xx when valid), never a 5xx or a hang',
    { timeout: 120_000 },
    async () => {
      await fc.assert(
        fc.asyncProperty(withOddHeaders(mareAttempts()), (a) => check(mareUrl, a)),
        { numRuns: 1600 },
      );
      expect(mare!.running).toBe(true);
    },
  );

  it(
    'triton-api answers every one with a 4xx error body (or a 2xx when valid), never a 5xx or a hang',
    { timeout: 120_000 },
    async () => {
      await fc.assert(
        fc.asyncProperty(withOddHeaders(tritonAttempts()), (a) => check(system!.tritonUrl, a)),
        { numRuns: 1400 },
      );
    },
  );

  it('leaves both services healthy, with no error logged and no SSE connection left open', async () => {
    expect(requestsSent).toBeGreaterThanOrEqual(3000);
    // Every job the fuzzer got accepted ran to its end: the client's (odd) propositions did not
    // break the worker, and jobs for clients that do not exist failed saying so.
    expect(submittedJobs.length).toBeGreaterThan(0);
    for (const jobId of submittedJobs) {
      const doc = await waitFor(`job ${jobId} to end`, async () => {
        const res = await http<{ status: string; client_id: string; error_message: string }>(
          'GET',
          `${system!.tritonUrl}/jobs/${jobId}`,
        );
        return ['completed', 'failed'].includes(res.body.status) && res.body;
      });
      if (doc.client_id === clientId) expect(doc, jobId).toMatchObject({ status: 'completed' });
      else expect(doc.error_message).toMatch(/does not exist|no active value proposition/);
    }
    expect(mare!.running).toBe(true);
    for (const base of [mareUrl, system!.tritonUrl]) {
      expect((await http('GET', `${base}/ready`)).status).toBe(200);
    }
    expect(mare!.logs.filter((l) => l.level >= 50)).toEqual([]);
    await waitFor('every fuzzed SSE connection to be closed', async () => {
      const text = (await http<string>('GET', `${mareUrl}/metrics`)).body;
      return (
        /^mare_sse_connections\{/m.test(text) && !/^mare_sse_connections\{[^}]*\} [1-9]/m.test(text)
      );
    });
    // The fuzzer got past the router to validation, size and media-type checks.
    const statuses = new Set([...seen.keys()].map((k) => k.slice(0, 3)));
    for (const status of ['200', '201', '202', '400', '404', '413', '415']) {
      expect(statuses).toContain(status);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Redis

function isInvalidEvent(message: string): boolean {
  try {
    decodeEvent(message);
    return false;
  } catch {
    return true;
  }
}

/** A well-formed event of an unknown job, to break in every way. */
const template = {
  event_type: 'job:completed',
  timestamp: new Date().toISOString(),
  job_id: randomUUID(),
  client_id: randomUUID(),
  status: 'completed',
  template_ids: [randomUUID()],
  template_count: 1,
  generation_duration_ms: 10,
  completed_at: new Date().toISOString(),
  seq: 1,
};

const absurdSeq = fc.constantFrom(0, -1, -(2 ** 53), 1.5, 2 ** 60, 2 ** 70, 1e308, '7', null, true);

/**
 * Messages that are not job events, in every way a broken or hostile publisher could send:
 * garbage, truncated JSON, JSON of the wrong shape, and events (of the finished job too) whose
 * seq is absurd.
 */
function malformedMessage(knownJob: string): fc.Arbitrary<string> {
  return fc
    .oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: oddChar, maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.nat(JSON.stringify(template).length - 1).map((n) => JSON.stringify(template).slice(0, n)),
      fc
        .tuple(fc.constantFrom(...Object.keys(template)), fc.option(fieldValue, { nil: undefined }))
        .map(([key, value]) => {
          const event: Record<string, unknown> = { ...template };
          if (value === undefined) delete event[key];
          else event[key] = value;
          return JSON.stringify(event);
        }),
      fc
        .constantFrom('job:done', 'JOB:COMPLETED', '', 'job:snapshot', 'stream:resync')
        .map((t) => JSON.stringify({ ...template, event_type: t })),
      fc
        .tuple(fc.oneof(fc.uuid(), fc.constant(knownJob)), absurdSeq)
        .map(([jobId, seq]) => JSON.stringify({ ...template, job_id: jobId, seq })),
      fc.constantFrom('null', '[]', '{}', '1', '"job:completed"', 'true', '{"__proto__":{"x":1}}'),
      fc.json({ maxDepth: 3 }),
    )
    .filter(isInvalidEvent);
}

/** Payloads of hundreds of kilobytes. */
const hugeMessage = fc.oneof(
  fc
    .integer({ min: 100_000, max: 400_000 })
    .map((n) => JSON.stringify({ ...template, error_message: 'x'.repeat(n), seq: -1 })),
  fc.integer({ min: 100_000, max: 400_000 }).map((n) => '{'.repeat(n)),
  fc.integer({ min: 100_000, max: 400_000 }).map((n) => '\u0000'.repeat(n)),
);

/** A counter's value, summed over its labels. */
async function metricValue(name: string): Promise<number> {
  const text = (await http<string>('GET', `${mareUrl}/metrics`)).body;
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function snapshot() {
  const sys = system!;
  const redis = publisher!;
  const lookup = await http<unknown>('GET', `${mareUrl}/v1/triton/jobs/${finishedJob}`);
  return {
    clients: (await http('GET', `${sys.tritonUrl}/clients/?limit=1000`)).body,
    jobDocument: lookup.body,
    cacheHeader: lookup.headers.get('x-cache'),
    cached: await redis.get(keyspace.jobResultKey(finishedJob)),
    history: await redis.xrange(keyspace.jobHistoryKey(finishedJob), '-', '+'),
    globalHistoryLength: await redis.xlen(keyspace.globalHistoryKey),
  };
}

describe('malformed messages on the events channels', () => {
  it(
    'are counted in mare_events_invalid_total, logged and ignored; mare-api stays healthy and nothing stored changes',
    { timeout: 120_000 },
    async () => {
      const sys = system!;
      const redis = publisher!;
      // Let jobs the fuzzer may have started finish, so that the snapshot holds still.
      await waitFor(
        'no unfinished jobs',
        async () =>
          (await sys.triton.queue.getActiveCount()) + (await sys.triton.queue.getWaitingCount()) ===
          0,
        { timeoutMs: 30_000 },
      );
      const before = await snapshot();
      expect(before.cacheHeader).toBe('hit');
      expect(before.cached).not.toBeNull();
      const invalidBefore = await metricValue('mare_events_invalid_total');
      const receivedBefore = await metricValue('mare_events_received_total');
      const logsBefore = mare!.logs.length;

      // A watcher of every job: malformed messages must never reach it.
      const watcher = await openSse(`${mareUrl}/v1/triton/events`);
      streams.push(watcher);
      expect(watcher.status).toBe(200);

      // Thousands of small ones, with a huge one every hundred.
      const messages = fc.sample(malformedMessage(finishedJob), 2970);
      for (const [k, huge] of fc.sample(hugeMessage, 30).entries()) {
        messages.splice(k * 100, 0, huge);
      }
      const jobChannels = [keyspace.jobChannel(finishedJob), keyspace.jobChannel(randomUUID())];
      let onAllJobs = 0;
      const batch = 250;
      for (let i = 0; i < messages.length; i += batch) {
        const pipeline = redis.pipeline();
        for (const [j, message] of messages.slice(i, i + batch).entries()) {
          // Two in three on the channel the gateway subscribes to, the rest on job channels.
          if ((i + j) % 3 === 2) pipeline.publish(jobChannels[(i + j) % 2]!, message);
          else {
            pipeline.publish(keyspace.allJobsChannel, message);
            onAllJobs++;
          }
        }
        await pipeline.exec();
        // Keep the subscriber's output buffer in Redis small: let it catch up batch by batch.
        const expected = invalidBefore + onAllJobs;
        await waitFor(
          `mare_events_invalid_total to reach ${expected}`,
          async () => (await metricValue('mare_events_invalid_total')) === expected,
          { timeoutMs: 30_000, intervalMs: 50 },
        );
      }

      expect(await metricValue('mare_events_invalid_total')).toBe(invalidBefore + onAllJobs);
      expect(await metricValue('mare_events_received_total')).toBe(receivedBefore);
      const ignored = mare!.logs
        .slice(logsBefore)
        .filter((l) => l.msg === 'Ignoring a malformed message on the events channel');
      expect(ignored).toHaveLength(onAllJobs);
      expect(ignored.every((l) => l.level === 40 && typeof l.reason === 'string')).toBe(true);
      expect(watcher.events).toEqual([]);

      // Healthy: ready, and a real job goes through end to end.
      expect(mare!.running).toBe(true);
      expect((await http('GET', `${mareUrl}/ready`)).status).toBe(200);
      expect(await snapshot()).toEqual(before);

      const res = await http<{ job_id: string }>(
        'POST',
        `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
      );
      expect(res.status).toBe(202);
      const sse = await openSse(`${mareUrl}/v1/triton/jobs/${res.body.job_id}/subscribe`);
      streams.push(sse);
      await sse.ended;
      const events = payloads<Event>(sse);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.at(-1)).toMatchObject({ event_type: 'job:completed', status: 'completed' });
      expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
      // The all-jobs watcher saw the real job, and only it.
      await waitFor('the watcher to see the job complete', () =>
        payloads<Event>(watcher).some((e) => e.event_type === 'job:completed'),
      );
      expect(new Set(payloads<Event>(watcher).map((e) => e.job_id))).toEqual(
        new Set([res.body.job_id]),
      );
      expect(mare!.logs.filter((l) => l.level >= 50)).toEqual([]);
    },
  );
});
