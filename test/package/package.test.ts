import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MareClient } from '../../src/client/index.js';
import { launchChromium, newWatchedPage, serveBundledPage } from '../helpers/browser.js';
import { readmeSnippet } from '../helpers/readme-snippet.js';
import { startSystem, type TestSystem } from '../helpers/system.js';

/**
 * The package as its users get it: `npm pack` in this repository, `npm install` of the tarball
 * in a separate project, then the installed package used from plain Node, from TypeScript, from
 * its command line, and bundled for Chromium, against a running system. The README's examples
 * are the code that runs.
 */

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
/** Installs reuse npm's cache (the repository's own install filled it) before the registry. */
/** A watch ends its stream itself once the terminal event is in: the browser calls that aborted. */
const STREAMS = /\/v1\/triton\/jobs\/[^/]+\/subscribe/;
const NPM_INSTALL = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

let work: string;
let consumer: string;
let tarball: string;
let packed: { size: number; unpackedSize: number; files: { path: string }[] };
let manifestBefore: string;
let system: TestSystem;
let mare: MareClient;
let browser: Browser;
let clientId: string;

/** A version the repository has installed, so the consumer's install finds it in the cache. */
function installedVersion(name: string): string {
  const file = path.join(ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

function write(relative: string, text: string): string {
  const file = path.join(consumer, relative);
  writeFileSync(file, text);
  return file;
}

/** The stored bodies of a job's templates, in order. */
async function storedBodies(jobId: string): Promise<string[]> {
  return (await mare.getJobTemplates(jobId)).map((t) => t.body);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'triton-events-package-'));
  manifestBefore = readFileSync(path.join(ROOT, 'package.json'), 'utf8');
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  // npm prints the lifecycle scripts' output before the JSON report.
  const report = JSON.parse(stdout.slice(stdout.search(/^\[$/m))) as (typeof packed & {
    filename: string;
  })[];
  const [first] = report;
  if (!first) throw new Error('npm pack reported no tarball');
  packed = first;
  tarball = path.join(work, first.filename);

  consumer = path.join(work, 'consumer');
  mkdirSync(consumer);
  write('package.json', JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await run(
    'npm',
    [
      ...NPM_INSTALL,
      tarball,
      `react@${installedVersion('react')}`,
      `react-dom@${installedVersion('react-dom')}`,
      `@types/react@${installedVersion('@types/react')}`,
    ],
    { cwd: consumer },
  );

  system = await startSystem({ env: { GENERATION_STEP_MS: '150', DELTA_INTERVAL_MS: '20' } });
  mare = new MareClient({ baseUrl: system.mareUrl });
  const client = await mare.createClient({ name: 'Packaged Ltd', industry: 'Logistics' });
  await mare.createValueProposition(client.id, { content: 'Parcels that track themselves' });
  clientId = client.id;
  browser = await launchChromium();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await system?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships only the built client, contract, hook and command line, and leaves package.json as it was', () => {
    const paths = packed.files.map((f) => f.path);
    for (const entry of ['client', 'contract', 'react']) {
      expect(paths).toContain(`dist/${entry}/index.js`);
      expect(paths).toContain(`dist/${entry}/index.d.ts`);
    }
    expect(paths).toContain('bin/triton-events.mjs');
    expect(paths).toContain('dist/cli/triton-cli.js');
    const stray = paths.filter(
      (p) =>
        !/^dist\/(client|contract|react|cli)\/[\w-]+\.(js|d\.ts)$/.test(p) &&
        !['bin/triton-events.mjs', 'package.json', 'README.md'].includes(p),
    );
    expect(stray).toEqual([]);
    // Small: a client, not a server. (48 kB packed when this was written.)
    expect(packed.size).toBeLessThan(150_000);
    expect(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).toBe(manifestBefore);
  });

  it('depends on zod and eventsource-parser alone, with React an optional peer', () => {
    const installed = JSON.parse(
      readFileSync(path.join(consumer, 'node_modules/triton-events/package.json'), 'utf8'),
    ) as Record<string, unknown>;
    const root = JSON.parse(manifestBefore) as { dependencies: Record<string, string> };
    expect(installed.dependencies).toEqual({
      'eventsource-parser': root.dependencies['eventsource-parser'],
      zod: root.dependencies.zod,
    });
    expect(installed.peerDependenciesMeta).toEqual({ react: { optional: true } });
    expect(installed).not.toHaveProperty('scripts');
    expect(installed).not.toHaveProperty('devDependencies');
  });

  it("follows a job to completion from plain Node with the README's example", async () => {
    const script = write('follow-job.mjs', readmeSnippet('client-node'));
    const { stdout } = await run(process.execPath, [script, clientId], {
      cwd: consumer,
      env: { ...process.env, MARE_URL: system.mareUrl },
    });
    const lines = stdout.trim().split('\n');
    const [jobId, status] = (lines.at(-1) ?? '').split(' ');
    expect(status).toBe('completed');
    expect(lines).toContain('100%');
    const bodies = await storedBodies(jobId ?? '');
    expect(bodies).toHaveLength(7);
    for (const body of bodies) expect(stdout).toContain(body);
  });

  it('type-checks a TypeScript consumer against the shipped declarations', async () => {
    write(
      'tsconfig.json',
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023', 'DOM'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          types: [],
          jsx: 'react-jsx',
        },
        files: ['check.ts', 'job.tsx'],
      }),
    );
    write('job.tsx', readmeSnippet('react-hook'));
    write(
      'check.ts',
      [
        "import { MareApiError, MareClient, type TemplateText } from 'triton-events/client';",
        "import { JobEvent, TEMPLATE_KINDS } from 'triton-events/contract';",
        "import { useJob, type UseJobResult } from 'triton-events/react';",
        '',
        "const mare = new MareClient({ baseUrl: 'http://127.0.0.1:16000' });",
        'export async function follow(clientId: string): Promise<TemplateText[]> {',
        '  const { job_id } = await mare.generateTemplates(clientId);',
        '  const watch = mare.watchJob(job_id);',
        '  await watch.done;',
        '  return watch.templates;',
        '}',
        'export const event: JobEvent | undefined = JobEvent.safeParse({}).data;',
        'export const kinds: readonly string[] = TEMPLATE_KINDS;',
        'export const hook: (id: string) => UseJobResult = (id) => useJob(id);',
        "export const notFound = (e: unknown) => e instanceof MareApiError && e.code === 'JOB_NOT_FOUND';",
        '// @ts-expect-error: a job id is a string (were the declarations `any`, this would fail)',
        'void mare.getJob(42);',
        '',
      ].join('\n'),
    );
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', consumer]).catch(
      (err: { stdout: string }) => ({ stdout: err.stdout }),
    );
    expect(result.stdout).toBe('');
  }, 120_000);

  it('runs its command line from the installed package, without tsx or sources', async () => {
    const bin = path.join(consumer, 'node_modules/.bin/triton-events');
    // Exit status 0 only when the job completed; the job's id is what it prints on stdout.
    const { stdout } = await run(
      bin,
      ['submit', clientId, '--watch', '--no-templates', '--url', system.mareUrl],
      { cwd: consumer },
    );
    const jobId = stdout.trim();
    expect((await mare.getJob(jobId)).status).toBe('completed');
  });

  it('follows a job in Chromium from a bundle of the installed client', async () => {
    const entry = write(
      'browser-entry.js',
      [
        "import { MareClient } from 'triton-events/client';",
        'window.followJob = async (baseUrl, clientId) => {',
        '  const mare = new MareClient({ baseUrl });',
        '  const { job_id } = await mare.generateTemplates(clientId);',
        '  const watch = mare.watchJob(job_id);',
        '  const result = await watch.done;',
        '  return { jobId: job_id, status: result.status, texts: watch.templates.map((t) => t.text) };',
        '};',
        '',
      ].join('\n'),
    );
    const served = await serveBundledPage(entry, { title: 'package in a browser' });
    const { context, page, problems } = await newWatchedPage(browser, { expectedAborts: STREAMS });
    try {
      await page.goto(served.url);
      await page.waitForFunction(() => 'followJob' in window);
      const outcome = await page.evaluate(
        ([baseUrl, id]) =>
          (
            window as unknown as {
              followJob(
                b: string,
                c: string,
              ): Promise<{ jobId: string; status: string; texts: string[] }>;
            }
          ).followJob(baseUrl, id),
        [system.mareUrl, clientId] as const,
      );
      expect(outcome.status).toBe('completed');
      expect(outcome.texts).toEqual(await storedBodies(outcome.jobId));
      expect(problems).toEqual([]);
    } finally {
      await context.close();
      await served.close();
    }
  });

  it("renders a job with the README's useJob component, bundled from the installed package", async () => {
    const { job_id: jobId } = await mare.generateTemplates(clientId);
    write(
      'hook-entry.tsx',
      [
        "import { createRoot } from 'react-dom/client';",
        "import { Job } from './job.js';",
        'const params = new URLSearchParams(location.search);',
        "createRoot(document.getElementById('root')!).render(",
        "  <Job jobId={params.get('job') ?? ''} baseUrl={params.get('mare') ?? undefined} />,",
        ');',
        '',
      ].join('\n'),
    );
    write('job.tsx', readmeSnippet('react-hook'));
    const served = await serveBundledPage(path.join(consumer, 'hook-entry.tsx'), {
      title: 'useJob from the package',
    });
    const { context, page, problems } = await newWatchedPage(browser, { expectedAborts: STREAMS });
    try {
      const query = new URLSearchParams({ job: jobId, mare: system.mareUrl });
      await page.goto(`${served.url}?${query.toString()}`);
      await page.waitForFunction(() =>
        document.querySelector('article p')?.textContent?.startsWith('completed 100%'),
      );
      const texts = await page.locator('article pre').allTextContents();
      expect(texts).toEqual(await storedBodies(jobId));
      expect(problems).toEqual([]);
    } finally {
      await context.close();
      await served.close();
    }
  });
});
