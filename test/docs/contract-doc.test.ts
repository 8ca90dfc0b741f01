import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusOf } from '../../src/common/http.js';
import {
  closingComment,
  createKeyspace,
  ERROR_CODES,
  EVENT_TYPES,
  HEARTBEAT_FRAME,
  JobEvent,
  JobSnapshot,
  JobStatusDocument,
  resyncFrame,
  RESYNC_EVENT,
  retryFrame,
  SnapshotDraft,
  SnapshotTemplate,
} from '../../src/contract/index.js';
import { SSE_HEADERS } from '../../src/mare/sse-stream.js';
import type { TestSystem } from '../helpers/system.js';
import { startAuthSystem, type AuthSystem } from '../helpers/tenants.js';

/**
 * docs/contract.md cannot fall behind the code: every error code with its status, every event
 * type with its fields, the SSE frames and headers, every Redis name and every route of both
 * APIs is checked against what the code itself knows.
 */

const DOC_PATH = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../docs/contract.md',
);
const doc = readFileSync(DOC_PATH, 'utf8');

/** The text under a heading line, up to the next heading of any level. */
function section(heading: string): string {
  const lines = doc.split('\n');
  const start = lines.indexOf(heading);
  expect(start, `docs/contract.md has the heading ${heading}`).toBeGreaterThanOrEqual(0);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => line.startsWith('#'));
  return rest.slice(0, end === -1 ? undefined : end).join('\n');
}

/** Names as code spans (`` `name` ``), as the page writes fields, codes and names. */
function missingSpans(text: string, names: Iterable<string>): string[] {
  return [...names].filter((name) => !text.includes(`\`${name}\``));
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('docs/contract.md', () => {
  it('lists every error code with the status it is answered with', () => {
    const missing = ERROR_CODES.filter(
      (code) =>
        !new RegExp(`^\\|\\s*\`${code}\`\\s*\\|\\s*${statusOf(code)}\\s*\\|`, 'm').test(doc),
    );
    expect(missing).toEqual([]);
  });

  it('describes every event type with each of its fields', () => {
    const common = [
      'event_type',
      'timestamp',
      'job_id',
      'client_id',
      'status',
      'seq',
      'stream_id',
      'tenant_id',
    ];
    expect(missingSpans(section('### Fields every event has'), common)).toEqual([]);
    expect(JobEvent.options.map((o) => o.shape.event_type.value)).toEqual([...EVENT_TYPES]);
    for (const schema of JobEvent.options) {
      const type = schema.shape.event_type.value;
      const own = Object.keys(schema.shape).filter((field) => !common.includes(field));
      expect(missingSpans(section(`### \`${type}\``), own), type).toEqual([]);
    }
  });

  it('describes the status document and the snapshot with each of their fields', () => {
    const statusFields = Object.keys(JobStatusDocument.shape);
    expect(missingSpans(section('## The status document'), statusFields)).toEqual([]);
    const snapshotFields = [
      ...Object.keys(JobSnapshot.shape).filter((field) => !statusFields.includes(field)),
      ...Object.keys(SnapshotTemplate.shape),
      ...Object.keys(SnapshotDraft.shape),
      'job:snapshot',
    ];
    expect(missingSpans(section('### `job:snapshot`'), snapshotFields)).toEqual([]);
  });

  it('describes the all-jobs resync event as the gateway writes it', () => {
    const frame = resyncFrame('history_unavailable');
    const data = JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? '{}') as Record<string, unknown>;
    expect(frame).toContain(`event: ${RESYNC_EVENT}\n`);
    const text = section(`### \`${RESYNC_EVENT}\``);
    expect(
      missingSpans(text, [
        ...Object.keys(data),
        String(data.event_type),
        String(data.reason),
        `event: ${RESYNC_EVENT}`,
      ]),
    ).toEqual([]);
  });

  it('gives the SSE frames and headers as the gateway writes them', () => {
    const sse = section('## Server-Sent Events');
    expect(sse).toContain(`\`${closingComment('completed').trim()}\``);
    expect(sse).toContain(`\`${HEARTBEAT_FRAME.trim()}\``);
    expect(retryFrame(2000)).toBe('retry: 2000\n\n');
    expect(sse).toContain('`retry: <ms>`');
    for (const [name, value] of Object.entries(SSE_HEADERS)) {
      expect(sse, name).toMatch(new RegExp(`\`${escape(name)}: ${escape(value)}\``));
    }
  });

  it('names every Redis channel and key, the promised ones among the kept names', () => {
    const k = createKeyspace();
    const kept = section('## Redis channels and keys').split('Internal,')[0] ?? '';
    expect(
      missingSpans(kept, [k.allJobsChannel, k.jobChannel('{job_id}'), k.jobResultKey('{job_id}')]),
    ).toEqual([]);
    const id = '<job_id>';
    expect(
      missingSpans(doc, [
        k.jobSeqKey(id),
        k.jobHistoryKey(id),
        k.jobDraftKey(id),
        k.publishReceiptKey(id, '<token>'),
        k.jobCancelKey(id),
        k.cancelChannel,
        k.globalHistoryKey,
        k.globalReceiptKey('<token>'),
        k.queuePrefix,
        k.rateLimitKey('<api>:<kind>', '<client>'),
        k.cacherLeaseKey,
        k.apiKeyKey('<id>'),
        k.apiKeyIdsKey,
      ]),
    ).toEqual([]);
  });
});

describe('docs/contract.md and the routes of both APIs', () => {
  // With AUTH=on, the APIs serve every route they have (the stream-token route only exists then).
  let auth: AuthSystem;
  let system: TestSystem;
  beforeAll(async () => {
    auth = await startAuthSystem();
    system = auth.system;
  });
  afterAll(() => auth?.close());

  type OpenApi = { paths: Record<string, Record<string, unknown>> };

  /** `METHOD /path` of every operation in an API's OpenAPI document. */
  async function operations(baseUrl: string): Promise<string[]> {
    const api = (await (await fetch(`${baseUrl}/docs/json`)).json()) as OpenApi;
    return Object.entries(api.paths).flatMap(([route, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${route}`),
    );
  }

  it('describes every operation in the OpenAPI documents of triton-api and mare-api', async () => {
    const all = [...(await operations(system.tritonUrl)), ...(await operations(system.mareUrl))];
    expect(all.length).toBeGreaterThan(20);
    expect(all.filter((operation) => !doc.includes(`\`${operation}\``))).toEqual([]);
  });

  it('names no route that neither API serves', () => {
    const named = [...doc.matchAll(/`(GET|HEAD|POST|PUT|PATCH|DELETE) (\/[^`\s]*)`/g)];
    expect(named.length).toBeGreaterThan(20);
    const apps = [system.triton.app!, system.mare.app];
    const unserved = named
      .map(([, method = '', route = '']) => ({ method, route }))
      .filter(({ method, route }) => {
        // The router ignores a trailing slash (`/clients/` is served as `/clients`).
        const url = route.replace(/\{(\w+)\}/g, ':$1').replace(/(.)\/$/, '$1');
        return !apps.some((app) => app.hasRoute({ method, url }));
      })
      .map(({ method, route }) => `${method} ${route}`);
    expect(unserved).toEqual([]);
  });
});
