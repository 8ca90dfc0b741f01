import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configVariables } from '../../src/common/config.js';
import { openSse } from '../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../helpers/system.js';

/**
 * What can be checked here of the deployment files without a Docker engine: the compose file
 * parses and has the production shape, every variable it sets is one the services read, every
 * command it runs exists, and every metric the Grafana dashboard and the alert rules query is
 * one the services really export.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string>;
  ports?: string[];
  deploy?: { replicas?: number };
  profiles?: string[];
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const services = compose.services;
const appServices = Object.entries(services).filter(([, s]) => s.build !== undefined);

/** Every metric name a PromQL expression mentions. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:triton|mare)_[a-z0-9_]+)\b/g)].map((m) => m[1] ?? '');
}

/** The metric family a sample name belongs to (histograms export _bucket, _sum and _count). */
function family(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}

describe('docker-compose.yml', () => {
  it('has the production shape: Redis with AOF, Postgres, triton-api, several workers, two gateways', () => {
    expect(String(services.redis?.command)).toMatch(/--appendonly yes/);
    expect(services.postgres?.image).toMatch(/^postgres:/);
    expect(services['triton-api']?.command).toContain('src/triton/main-api.ts');
    expect(services['triton-worker']?.command).toContain('src/triton/main-worker.ts');
    expect(services['triton-worker']?.deploy?.replicas).toBeGreaterThanOrEqual(2);
    const gateways = appServices.filter(([, s]) =>
      (s.command ?? []).includes('src/mare/main-api.ts'),
    );
    expect(gateways).toHaveLength(2);
  });

  it('sets only variables that the services read, and runs scripts that exist', () => {
    const known = new Set(configVariables());
    for (const [name, service] of appServices) {
      for (const variable of Object.keys(service.environment ?? {})) {
        expect(known.has(variable), `${name} sets ${variable}`).toBe(true);
      }
      const command =
        typeof service.command === 'string' ? service.command.split(' ') : (service.command ?? []);
      const script = command.find((part) => part.endsWith('.ts'));
      expect(script && existsSync(path.join(ROOT, script)), `${name} runs ${script}`).toBe(true);
    }
    // Separate workers need a real Postgres: embedded PGlite is one process's alone.
    expect(services['triton-worker']?.environment?.DATABASE_URL).toMatch(/^postgres:\/\//);
    expect(services['triton-api']?.environment?.TRITON_API_WORKER).toBe('false');
  });

  it('turns access control on in every part, with secrets the operator must give', () => {
    for (const [name, service] of appServices) {
      const env = service.environment ?? {};
      expect(env.AUTH, name).toBe('on');
      // `${NAME:?message}`: compose refuses to start without them, rather than share a default.
      expect(env.GATEWAY_SECRET, name).toMatch(/^\$\{GATEWAY_SECRET:\?.+\}$/);
      expect(env.STREAM_TOKEN_SECRET, name).toMatch(/^\$\{STREAM_TOKEN_SECRET:\?.+\}$/);
    }
  });

  it('builds from a Dockerfile whose command and copied paths exist', () => {
    const dockerfile = read('Dockerfile');
    for (const [, source] of dockerfile.matchAll(/^COPY (\S+)/gm)) {
      for (const file of (source ?? '').split(' '))
        expect(existsSync(path.join(ROOT, file)), file).toBe(true);
    }
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    const script = (JSON.parse(cmd ?? '[]') as string[]).find((part) => part.endsWith('.ts'));
    expect(script && existsSync(path.join(ROOT, script))).toBe(true);
  });
});

describe('the Grafana dashboard and alert rules', () => {
  let system: TestSystem;
  let exported: Set<string>;

  beforeAll(async () => {
    system = await startSystem();
    // Some work, so that every labelled metric has a sample.
    const clientId = await createClientWithProposition(system.tritonUrl);
    const job = await http<{ job_id: string }>(
      'POST',
      `${system.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
    );
    const sse = await openSse(`${system.mareUrl}/v1/triton/jobs/${job.body.job_id}/subscribe`);
    await sse.ended;
    await http('GET', `${system.mareUrl}/v1/triton/jobs/${job.body.job_id}`);
    exported = new Set();
    for (const base of [system.tritonUrl, system.mareUrl]) {
      const text = await (await fetch(`${base}/metrics`)).text();
      for (const [, name] of text.matchAll(/^# TYPE (\S+) /gm)) exported.add(name ?? '');
    }
  });

  afterAll(() => system?.close());

  it('queries only metrics the services export, and has the four panels of the original dashboard', () => {
    const dashboard = JSON.parse(read('deploy/grafana/triton-events.json')) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    const queried = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => metricNames(t.expr)));
    expect(queried.length).toBeGreaterThan(10);
    for (const name of queried) expect(exported.has(family(name)), name).toBe(true);
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const panel of [
      'event publish rate',
      'cache hit rate',
      'sse connections',
      'event delivery time',
    ]) {
      expect(titles).toContain(panel);
    }
  });

  it('alerts on the original thresholds with real metrics', () => {
    const rules = (
      parse(read('deploy/prometheus/alerts.yml')) as {
        groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
      }
    ).groups.flatMap((g) => g.rules);
    for (const rule of rules) {
      for (const name of metricNames(rule.expr))
        expect(exported.has(family(name)), `${rule.alert}: ${name}`).toBe(true);
    }
    const byName = Object.fromEntries(
      rules.map((r) => [r.alert, r.expr.replace(/\s+/g, ' ').trim()]),
    );
    expect(byName.CacheHitRateLow).toMatch(/< 80$/);
    expect(byName.EventDeliverySlow).toMatch(/> 5$/);
    expect(byName.SseConnectionsHigh).toMatch(/> 1000$/);
  });
});
