import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorBody } from '../../src/contract/index.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import type { EventData as Event } from '../helpers/events.js';

/**
 * What reaches the system and what leaves it, over real HTTP on both APIs: one-line fields
 * (names, industries) hold no control characters and no runs of blank space, so nothing a
 * caller types can add a line to generated text (an email's `Subject:` header); only a value
 * proposition keeps its line breaks. A body that tries to set an object's prototype is refused
 * saying so. Every answer tells browsers not to guess its type, and a method a path does not
 * serve gets 405 with the methods it does.
 */

let system: TestSystem | undefined;
let tritonUrl = '';
let mareUrl = '';
let clientId = '';
let finishedJob = '';

beforeAll(async () => {
  system = await startSystem({
    env: { SUBMIT_RATE_LIMIT_PER_MINUTE: '0', WRITE_RATE_LIMIT_PER_MINUTE: '0' },
  });
  tritonUrl = system.tritonUrl;
  mareUrl = system.mareUrl;
  clientId = await createClientWithProposition(tritonUrl);
  const res = await http<{ job_id: string }>(
    'POST',
    `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  finishedJob = res.body.job_id;
  const sse = await openSse(`${mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`);
  await sse.ended;
});

afterAll(async () => {
  await system?.close();
});

function expectError(res: { status: number; body: unknown }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(ErrorBody.parse(res.body).error.code).toBe(code);
  return ErrorBody.parse(res.body).error.message;
}

/** Where each API creates clients and value propositions. */
const apis = () => [
  { name: 'triton-api', clients: `${tritonUrl}/clients/`, client: `${tritonUrl}/clients` },
  {
    name: 'mare-api',
    clients: `${mareUrl}/v1/triton/clients`,
    client: `${mareUrl}/v1/triton/clients`,
  },
];

describe('one-line fields', () => {
  const controls = [
    '\n',
    '\r',
    '\r\n',
    '\t',
    '\u0000',
    '\u0007',
    '\u001b[31m',
    '\u007f',
    '\u0085',
    '\u009b',
    '\u2028',
    '\u2029',
  ];

  it('refuse control characters (line breaks included) with 400 VALIDATION_FAILED naming the field, on both APIs, storing nothing', async () => {
    const before = await http<{ clients: unknown[] }>('GET', `${tritonUrl}/clients/?limit=1000`);
    for (const api of apis()) {
      for (const c of controls) {
        for (const field of ['name', 'industry'] as const) {
          const body = { name: 'Acme Health', industry: 'Health care', [field]: `Health${c}care` };
          const message = expectError(
            await http('POST', api.clients, body),
            400,
            'VALIDATION_FAILED',
          );
          expect(message, `${api.name} ${JSON.stringify(c)} in ${field}`).toMatch(
            new RegExp(`^body\\.${field}: must not contain control characters`),
          );
        }
      }
    }
    const after = await http<{ clients: unknown[] }>('GET', `${tritonUrl}/clients/?limit=1000`);
    expect(after.body.clients).toEqual(before.body.clients);
  });

  it('are trimmed, with every run of blank space made one space, on both APIs', async () => {
    for (const api of apis()) {
      const res = await http<{ name: string; industry: string }>('POST', api.clients, {
        name: '   Acme \u00a0  Health\u2003Inc.  ',
        industry: '\u3000Health  care\u00a0',
      });
      expect(res.status, api.name).toBe(201);
      expect(res.body).toMatchObject({ name: 'Acme Health Inc.', industry: 'Health care' });
    }
    // Blank space alone is no name.
    expectError(
      await http('POST', `${tritonUrl}/clients/`, { name: ' \u00a0 ', industry: 'x' }),
      400,
      'VALIDATION_FAILED',
    );
  });
});

describe('value proposition content', () => {
  it('keeps its line breaks (as \\n), trimmed, and refuses any other control character, naming the field', async () => {
    for (const api of apis()) {
      const res = await http<{ content: string }>(
        'POST',
        `${api.client}/${clientId}/value-propositions`,
        {
          content: '  First line\r\nSecond  line\rThird line\n\nA new paragraph.  \n',
          is_active: false,
        },
      );
      expect(res.status, api.name).toBe(201);
      expect(res.body.content).toBe('First line\nSecond  line\nThird line\n\nA new paragraph.');
      for (const c of ['\u0000', '\u0007', '\u001b[2J', '\u007f', '\u0085', '\t']) {
        const message = expectError(
          await http('POST', `${api.client}/${clientId}/value-propositions`, {
            content: `Fine${c}text`,
          }),
          400,
          'VALIDATION_FAILED',
        );
        expect(message, `${api.name} ${JSON.stringify(c)}`).toMatch(
          /^body\.content: must not contain control characters/,
        );
      }
    }
  });

  it('reaches generated text line for line, while a name or industry can never add a line to it', async () => {
    const created = await http<{ id: string }>('POST', `${mareUrl}/v1/triton/clients`, {
      name: '  Northwind   Care ',
      industry: ' Health   care ',
    });
    expect(created.status).toBe(201);
    const vp = await http(
      'POST',
      `${mareUrl}/v1/triton/clients/${created.body.id}/value-propositions`,
      {
        content: 'We reduce hospital readmissions by 30%',
      },
    );
    expect(vp.status).toBe(201);
    const job = await http<{ job_id: string }>(
      'POST',
      `${mareUrl}/v1/triton/clients/${created.body.id}/generate-templates`,
    );
    const sse = await openSse(`${mareUrl}/v1/triton/jobs/${job.body.job_id}/subscribe`);
    await sse.ended;
    expect(payloads<Event>(sse).at(-1)?.status).toBe('completed');
    const templates = await http<{
      templates: Array<{ kind: string; body: string; title: string }>;
    }>('GET', `${mareUrl}/v1/triton/jobs/${job.body.job_id}/templates`);
    const email = templates.body.templates.find((t) => t.kind === 'outreach_email');
    expect(email?.body.split('\n')[0]).toBe('Subject: A quick idea for your health care team');
    for (const t of templates.body.templates) {
      expect(t.title).not.toMatch(/[\r\n]/);
      // eslint-disable-next-line no-control-regex -- finding control characters is the point
      expect(t.body).not.toMatch(/[\r\u0000-\u0008\u000b-\u001f\u007f]/);
    }
  });
});

describe('bodies that try to set a prototype', () => {
  it('are refused with 400 VALIDATION_FAILED saying which key, on both APIs', async () => {
    for (const api of apis()) {
      for (const [body, key] of [
        ['{"__proto__":{"polluted":1},"name":"a","industry":"b"}', '__proto__'],
        ['{"name":"a","industry":"b","extra":{"__proto__":{"polluted":1}}}', '__proto__'],
        ['{"\\u005f_proto__":{},"name":"a","industry":"b"}', '__proto__'],
        [
          '{"constructor":{"prototype":{"polluted":1}},"name":"a","industry":"b"}',
          'constructor.prototype',
        ],
      ] as const) {
        const message = expectError(
          await http('POST', api.clients, body),
          400,
          'VALIDATION_FAILED',
        );
        expect(message, `${api.name} ${body}`).toBe(`Request body must not contain the key ${key}`);
      }
      // Not JSON at all is still said so.
      const broken = expectError(
        await http('POST', api.clients, '{"name":'),
        400,
        'VALIDATION_FAILED',
      );
      expect(broken).toBe('Request body is not valid JSON');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('every answer', () => {
  /** A request on a raw socket, for answers no HTTP client would ask for. */
  function raw(base: string, request: string): Promise<string> {
    const url = new URL(base);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => socket.end(request));
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
  }

  it('says X-Content-Type-Options: nosniff, on both APIs, whatever answers it', async () => {
    await waitFor('the finished job to be cached', async () => {
      const res = await http('GET', `${mareUrl}/v1/triton/jobs/${finishedJob}`);
      return res.headers.get('x-cache') === 'hit';
    });
    const requests: Array<[string, string, unknown?, Record<string, string>?]> = [];
    for (const base of [tritonUrl, mareUrl]) {
      requests.push(
        ['GET', `${base}/health`],
        ['GET', `${base}/ready`],
        ['GET', `${base}/metrics`],
        ['GET', `${base}/docs/json`],
        ['GET', `${base}/nowhere`],
        ['DELETE', `${base}/health`],
        ['OPTIONS', `${base}/health`, undefined, { origin: 'http://example.com' }],
        ['HEAD', `${base}/health`],
        ['POST', `${base}/health`, '{"x":', { 'content-type': 'text/plain' }],
      );
    }
    requests.push(
      ['GET', `${tritonUrl}/clients/`],
      ['POST', `${tritonUrl}/clients/`, { name: 'x' }],
      ['POST', `${tritonUrl}/clients/`, { name: 'x'.repeat(70_000), industry: 'y' }],
      ['GET', `${tritonUrl}/jobs/${finishedJob}`],
      ['GET', `${tritonUrl}/jobs/not-an-id`],
      // The cached lookup answered before routing, and the routed one.
      ['GET', `${mareUrl}/v1/triton/jobs/${finishedJob}`],
      ['GET', `${mareUrl}/v1/triton/jobs/${finishedJob}?x=1`],
      ['GET', `${mareUrl}/v1/triton/jobs/00000000-0000-4000-8000-000000000000`],
      [
        'GET',
        `${mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`,
        undefined,
        { 'last-event-id': '999' },
      ],
      ['HEAD', `${mareUrl}/v1/triton/events`],
      ['GET', `${mareUrl}/`],
    );
    for (const [method, url, body, headers] of requests) {
      const res = await http(method, url, body, headers);
      expect(res.headers.get('x-content-type-options'), `${method} ${url} → ${res.status}`).toBe(
        'nosniff',
      );
    }
    // A stream, and an answer written by the HTTP parser itself (oversized headers).
    const sse = await openSse(`${mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`);
    expect(sse.headers.get('x-content-type-options')).toBe('nosniff');
    await sse.ended;
    for (const base of [tritonUrl, mareUrl]) {
      const answer = await raw(
        base,
        `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 431 /);
      expect(answer.toLowerCase()).toContain('x-content-type-options: nosniff');
    }
  });
});

describe('a method a known path does not serve', () => {
  it('is answered 405 METHOD_NOT_ALLOWED with Allow naming the methods it serves, on both APIs', async () => {
    const cases: Array<[string, string, string[]]> = [
      ['DELETE', `${tritonUrl}/clients/`, ['GET', 'HEAD', 'POST']],
      ['PUT', `${tritonUrl}/clients/${clientId}`, ['GET', 'HEAD']],
      ['PATCH', `${tritonUrl}/clients/${clientId}/value-propositions`, ['GET', 'HEAD', 'POST']],
      ['GET', `${tritonUrl}/clients/${clientId}/generate-templates`, ['POST']],
      ['DELETE', `${tritonUrl}/jobs/${finishedJob}`, ['GET', 'HEAD']],
      ['GET', `${tritonUrl}/jobs/${finishedJob}/cancel`, ['POST']],
      ['DELETE', `${mareUrl}/v1/triton/jobs/${finishedJob}`, ['GET', 'HEAD']],
      ['POST', `${mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`, ['GET', 'HEAD']],
      ['PUT', `${mareUrl}/v1/triton/events`, ['GET', 'HEAD']],
      ['GET', `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`, ['POST']],
      ['DELETE', `${mareUrl}/v1/triton/clients`, ['GET', 'HEAD', 'POST']],
      ['POST', `${mareUrl}/health`, ['GET', 'HEAD']],
    ];
    for (const [method, url, allowed] of cases) {
      const res = await http(method, url);
      const message = expectError(res, 405, 'METHOD_NOT_ALLOWED');
      expect(message, `${method} ${url}`).toContain(method);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const allow = (res.headers.get('allow') ?? '').split(/,\s*/);
      expect(allow, `${method} ${url}`).toEqual([...allowed, 'OPTIONS']);
    }
    // A path no route serves is still 404.
    expectError(await http('DELETE', `${mareUrl}/v1/triton/nothing`), 404, 'ROUTE_NOT_FOUND');
    expectError(
      await http('GET', `${tritonUrl}/clients/${clientId}/nothing`),
      404,
      'ROUTE_NOT_FOUND',
    );
  });
});
