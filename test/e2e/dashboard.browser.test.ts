import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { Redis } from 'ioredis';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { MareClient } from '../../src/client/index.js';
import { createKeyspace } from '../../src/contract/index.js';
import { startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { seqRange } from '../helpers/events.js';

/**
 * The dashboard (`GET /` on mare-api) in a real browser: Debian's Chromium driven by
 * playwright-core, against the whole system. Jobs take 7 steps of 120 ms so that a progress bar
 * can be seen moving; the gateway tells browsers to reconnect after 300 ms.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ROOT = path.resolve(import.meta.dirname, '../..');
const NIL_CLIENT = '00000000-0000-0000-0000-000000000000';
/** Waits in the page: generous, because the machine running the tests may be busy. */
const PAGE_TIMEOUT_MS = 20_000;

let system: TestSystem;
let browser: Browser;
let mare: MareClient;
const contexts: BrowserContext[] = [];
/** Console errors, failed requests and uncaught exceptions of every page, by page. */
const problems = new Map<Page, string[]>();

beforeAll(async () => {
  // Never skip: a missing browser is a broken test setup, and it must say how to fix it.
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium was not found at ${CHROMIUM}. Install it with \`apt-get install -y chromium\` ` +
        '(`npm run setup:test` does), or point CHROMIUM_PATH at a Chromium binary.',
    );
  }
  system = await startSystem({ env: { GENERATION_STEP_MS: '120', SSE_RETRY_MS: '300' } });
  mare = new MareClient({ baseUrl: system.mareUrl });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}, 90_000);

afterEach(async () => {
  for (const context of contexts.splice(0)) await context.close();
});

afterAll(async () => {
  await browser?.close();
  await system?.close();
});

/**
 * A fresh page (its own context: no shared cache) that records every console error, page error
 * and failed request, so that a CSP violation or a script error fails the test.
 */
async function newPage({
  width = 1200,
  height = 900,
}: { width?: number; height?: number } = {}): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const seen: string[] = [];
  problems.set(page, seen);
  page.on('console', (m) => {
    if (m.type() === 'error') seen.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (err) => seen.push(`page error: ${err.message}`));
  page.on('requestfailed', (r) => {
    // Closing an EventSource (or its page) cancels its request: that is no failure.
    if (!/\/v1\/triton\/(events|jobs\/[^/]+\/subscribe)/.test(r.url())) {
      seen.push(`request failed: ${r.url()}`);
    }
  });
  return page;
}

async function openDashboard(page: Page): Promise<void> {
  await page.goto(system.mareUrl);
  await page.waitForSelector('#connection[data-state="live"]');
}

function expectNoProblems(page: Page): void {
  expect(problems.get(page) ?? []).toEqual([]);
}

function jobRow(page: Page, jobId: string) {
  return page.locator(`li[data-job-id="${jobId}"]`);
}

/** Waits until a job's row shows `status` (and, when completed, a full progress bar). */
async function waitForJobStatus(page: Page, jobId: string, status: string): Promise<void> {
  await page.waitForFunction(
    ([id, want]) => {
      const row = document.querySelector(`li[data-job-id="${id}"]`);
      if (!(row instanceof HTMLElement) || row.dataset.status !== want) return false;
      return want !== 'completed' || row.querySelector('[aria-valuenow="100"]') !== null;
    },
    [jobId, status] as const,
  );
}

/** Records every aria-valuenow a page's progress bars take, per job, from the first paint. */
async function recordProgress(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen: Record<string, number[]> = {};
    (window as unknown as { progressSeen: typeof seen }).progressSeen = seen;
    new MutationObserver((records) => {
      for (const r of records) {
        const bar = r.target as HTMLElement;
        const id = bar.closest('li')?.dataset.jobId;
        if (!id) continue;
        (seen[id] ??= []).push(Number(bar.getAttribute('aria-valuenow')));
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  });
}

function progressSeen(page: Page, jobId: string): Promise<number[]> {
  return page.evaluate(
    (id) =>
      (window as unknown as { progressSeen: Record<string, number[]> }).progressSeen[id] ?? [],
    jobId,
  );
}

/** Fills in and submits the "New client" form; resolves with the created client's id. */
async function createClientThroughPage(
  page: Page,
  name: string,
  industry: string,
  proposition: string,
): Promise<string> {
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Industry', { exact: true }).fill(industry);
  await page.getByLabel('Value proposition', { exact: true }).fill(proposition);
  const [created] = await Promise.all([
    page.waitForResponse(
      (r) => r.url().endsWith('/v1/triton/clients') && r.request().method() === 'POST',
    ),
    page.getByRole('button', { name: 'Create client' }).click(),
  ]);
  const { id } = (await created.json()) as { id: string };
  await page.waitForFunction(
    (clientId) =>
      (document.querySelector('#client-select') as HTMLSelectElement).value === clientId,
    id,
  );
  return id;
}

/** Presses "Generate templates" with the keyboard; resolves with the new job's id. */
async function generateThroughPage(page: Page): Promise<string> {
  await page.getByLabel('Client', { exact: true }).focus();
  await page.keyboard.press('Tab');
  expect(await page.evaluate(() => document.activeElement?.textContent?.trim())).toBe(
    'Generate templates',
  );
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/generate-templates')),
    page.keyboard.press('Enter'),
  ]);
  expect(response.status()).toBe(202);
  return ((await response.json()) as { job_id: string }).job_id;
}

// Each test drives a real browser on a machine that may be busy: allow it a minute.
describe('the dashboard', { timeout: 60_000 }, () => {
  it('serves the page and its assets once each, cacheably, with a strict CSP', async () => {
    const page = await newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    const response = await page.goto(system.mareUrl);
    expect(response?.headers()['content-type']).toBe('text/html; charset=utf-8');
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.waitForSelector('#connection[data-state="live"]');
    // Nothing from elsewhere, no favicon request, no asset fetched twice.
    expect(requests.filter((p) => p.startsWith('/assets/')).sort()).toEqual([
      '/assets/app.css',
      '/assets/app.js',
    ]);
    expect(requests).not.toContain('/favicon.ico');
    const js = await fetch(
      `${system.mareUrl}${await page.getAttribute('script[type=module]', 'src')}`,
    );
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toContain('immutable');
    const again = await fetch(system.mareUrl, {
      headers: { 'if-none-match': response?.headers().etag ?? '' },
    });
    expect(again.status).toBe(304);
    expectNoProblems(page);
  });

  it('creates a client and proposition, generates templates, shows progress to 100% and opens the templates', async () => {
    const page = await newPage();
    await recordProgress(page);
    await openDashboard(page);
    const clientId = await createClientThroughPage(
      page,
      'Northwind Clinics',
      'Healthcare',
      'We cut hospital readmissions by 30% with AI-coordinated care.',
    );
    expect(await page.locator('#form-status').textContent()).toContain('Northwind Clinics');

    const jobId = await generateThroughPage(page);
    const row = jobRow(page, jobId);
    await waitForJobStatus(page, jobId, 'completed');

    const seen = await progressSeen(page, jobId);
    expect(seen.at(-1)).toBe(100);
    expect(seen.some((v) => v > 0 && v < 100)).toBe(true);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(await row.locator('.badge').textContent()).toBe('completed');
    expect(await row.locator('.job-client').textContent()).toBe('Northwind Clinics');
    expect(await row.locator('.job-count').textContent()).toBe('7/7 templates');
    expect(await row.locator('.job-duration').textContent()).toMatch(/^\d+(\.\d+)? (ms|s)$/);
    expect(await page.locator('#announcer').textContent()).toContain('completed: 7 templates');

    // Open the finished job's templates with the keyboard.
    const toggle = row.locator('.templates-toggle');
    expect((await toggle.textContent())?.trim()).toBe('Show templates');
    await toggle.focus();
    await page.keyboard.press('Enter');
    await row.locator('.template-list li').nth(6).waitFor();
    expect(await toggle.getAttribute('aria-expanded')).toBe('true');
    expect((await toggle.textContent())?.trim()).toBe('Hide templates');
    const titles = await row.locator('.template-list h3').allTextContents();
    const templates = await mare.getJobTemplates(jobId);
    expect(titles).toEqual(templates.map((t) => t.title));
    expect(templates.every((t) => t.client_id === clientId)).toBe(true);
    expectNoProblems(page);
  });

  it("shows a failed job's error message", async () => {
    const page = await newPage();
    await openDashboard(page);
    // A client without a value proposition: its job is accepted, then fails saying why.
    await createClientThroughPage(page, 'Contoso Retail', 'Retail', '');
    const jobId = await generateThroughPage(page);
    await waitForJobStatus(page, jobId, 'failed');
    const row = jobRow(page, jobId);
    expect(await row.locator('.job-error').textContent()).toMatch(
      /has no active value proposition/,
    );
    expect(await row.getByRole('button', { name: 'Show templates' }).isHidden()).toBe(true);

    // The seed's failure drill, submitted elsewhere: it reaches the page through the feed.
    const { job_id } = await mare.generateTemplates(NIL_CLIENT);
    await waitForJobStatus(page, job_id, 'failed');
    expect(await jobRow(page, job_id).locator('.job-error').textContent()).toMatch(
      /client 00000000-0000-0000-0000-000000000000 does not exist/,
    );
    expectNoProblems(page);
  });

  it('shows the same job live in two tabs', async () => {
    const client = await mare.createClient({ name: 'Tailspin Toys', industry: 'Retail' });
    await mare.createValueProposition(client.id, { content: 'Toys kids keep', is_active: true });
    const [first, second] = [await newPage(), await newPage()];
    await Promise.all([recordProgress(first), recordProgress(second)]);
    await Promise.all([openDashboard(first), openDashboard(second)]);
    await first.getByLabel('Client', { exact: true }).selectOption(client.id);
    const jobId = await generateThroughPage(first);
    await Promise.all([
      waitForJobStatus(first, jobId, 'completed'),
      waitForJobStatus(second, jobId, 'completed'),
    ]);
    for (const page of [first, second]) {
      expect(await jobRow(page, jobId).count()).toBe(1);
      expect((await progressSeen(page, jobId)).at(-1)).toBe(100);
    }
    expectNoProblems(first);
    expectNoProblems(second);
  });

  it('shows the stream dropping and coming back, and misses nothing meanwhile', async () => {
    const page = await newPage();
    await page.addInitScript(() => {
      const states: string[] = [];
      (window as unknown as { connectionStates: string[] }).connectionStates = states;
      document.addEventListener('DOMContentLoaded', () => {
        const indicator = document.getElementById('connection');
        if (!indicator) return;
        new MutationObserver(() => states.push(indicator.dataset.state ?? '')).observe(indicator, {
          attributes: true,
          attributeFilter: ['data-state'],
        });
      });
    });
    await openDashboard(page);
    const client = await mare.createClient({ name: 'Fabrikam', industry: 'Manufacturing' });
    await mare.createValueProposition(client.id, { content: 'Less downtime', is_active: true });
    const { job_id } = await mare.generateTemplates(client.id);
    await page.waitForFunction(
      (id) => document.querySelector(`li[data-job-id="${id}"][data-status="running"]`),
      job_id,
    );
    system.mare.hub.closeAll();
    await page.waitForFunction(() => {
      const states = (window as unknown as { connectionStates: string[] }).connectionStates;
      const dropped = states.lastIndexOf('reconnecting');
      return dropped !== -1 && states.slice(dropped).includes('live');
    });
    expect(await page.locator('#connection').textContent()).toContain('Live');
    await waitForJobStatus(page, job_id, 'completed');
    expect(await jobRow(page, job_id).count()).toBe(1);
    expect(await jobRow(page, job_id).locator('.job-count').textContent()).toBe('7/7 templates');
    expectNoProblems(page);
  });

  it('reloads the recent history when the gateway can no longer resume it (resync)', async () => {
    const page = await newPage();
    /** Feed connections the page opened afresh (no Last-Event-ID): replaying the history. */
    let freshConnections = 0;
    page.on('request', (r) => {
      if (r.url().includes('/v1/triton/events?history=') && !r.headers()['last-event-id']) {
        freshConnections++;
      }
    });
    await openDashboard(page);
    const client = await mare.createClient({ name: 'Wide World Importers', industry: 'Logistics' });
    await mare.createValueProposition(client.id, { content: 'Fewer empty miles', is_active: true });
    const { job_id: seen } = await mare.generateTemplates(client.id);
    await waitForJobStatus(page, seen, 'completed');

    // The page's last event belongs to `seen`: forget that job's history, then cut the stream.
    // Its reconnect (Last-Event-ID `{seen}:10`) cannot be resumed, so the gateway says resync.
    const redis = new Redis(system.redis.url);
    try {
      await redis.del(createKeyspace(system.config.common.keyPrefix).jobHistoryKey(seen));
    } finally {
      redis.disconnect();
    }
    system.mare.hub.closeAll();
    // A job that runs while the page is away: the reloaded history brings it.
    const { job_id: missed } = await mare.generateTemplates(client.id);
    await waitForJobStatus(page, missed, 'completed');
    await page.waitForSelector('#connection[data-state="live"]');
    // The first load, and the reload after the resync.
    await waitFor('the page to reload its history', () => freshConnections >= 2);
    expect(await jobRow(page, missed).count()).toBe(1);
    expectNoProblems(page);
  });

  it("the seed's test-sse.html, opened from a file, receives a job's events and closes on completion (CORS)", async () => {
    const client = await mare.createClient({ name: 'Seed Page Inc', industry: 'Healthcare' });
    await mare.createValueProposition(client.id, { content: 'Seed drill', is_active: true });
    const { job_id } = await mare.generateTemplates(client.id);
    // The seed's snippet as it stands, with the job id and this run's gateway filled in.
    const snippet = `
const jobId = '${job_id}';
const eventSource = new EventSource(\`${system.mareUrl}/v1/triton/jobs/\${jobId}/subscribe\`);

eventSource.onopen = () => {
    console.log('✅ SSE connection opened');
};

eventSource.onmessage = (event) => {
    const data = JSON.parse(event.data);
    console.log('📨 Event received:', data);

    if (data.status === 'running') {
        console.log('⏳ Job is running...');
    }

    if (data.status === 'completed') {
        console.log(\`✅ Job completed! Generated \${data.template_count} templates\`);
        console.log('Template IDs:', data.template_ids);
        eventSource.close();
    }

    if (data.status === 'failed') {
        console.error('❌ Job failed:', data.error_message);
        eventSource.close();
    }
};

eventSource.onerror = (error) => {
    console.error('❌ SSE error:', error);
    eventSource.close();
};`;
    const dir = mkdtempSync(path.join(tmpdir(), 'seed-page-'));
    try {
      const file = path.join(dir, 'test-sse.html');
      writeFileSync(file, `<!doctype html><title>test-sse</title><script>${snippet}</script>`);
      const page = await newPage();
      const logs: string[] = [];
      page.on('console', (m) => logs.push(m.text()));
      await page.goto(pathToFileURL(file).href);
      await page.waitForFunction(() => document.title === 'test-sse');
      const done = await page.waitForEvent('console', {
        predicate: (m) => m.text().startsWith('✅ Job completed!'),
      });
      expect(done.text()).toBe('✅ Job completed! Generated 7 templates');
      expect(await page.evaluate('eventSource.readyState')).toBe(2); // CLOSED
      expect(logs[0]).toBe('✅ SSE connection opened');
      // Every event once: queued, started, each template's deltas and progress, completed.
      const received = logs.filter((l) => l.startsWith('📨 Event received:'));
      expect(received.length).toBeGreaterThan(10);
      expect(received.filter((l) => l.includes('job:progress'))).toHaveLength(7);
      expect(logs).toContain('⏳ Job is running...');
      expectNoProblems(page);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the typed client in the browser, cross-origin: a job watched to completion with for await', async () => {
    // The client as a browser would get it from any bundler: one script, no Node built-ins.
    const bundle = await build({
      entryPoints: [path.join(ROOT, 'src/client/index.ts')],
      bundle: true,
      write: false,
      format: 'iife',
      globalName: 'MareClientLib',
      platform: 'browser',
      target: 'chrome120',
      logLevel: 'silent',
    });
    const client = await mare.createClient({ name: 'Browser Bundle Ltd', industry: 'Software' });
    await mare.createValueProposition(client.id, { content: 'Ships itself', is_active: true });
    // A page on another origin (another port), so that every request needs CORS.
    const elsewhere = createServer((_req, res) =>
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<!doctype html><link rel="icon" href="data:,"><title>elsewhere</title>'),
    );
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void elsewhere.close());
    const { port } = elsewhere.address() as AddressInfo;
    const page = await newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.addScriptTag({ content: bundle.outputFiles[0]?.text ?? '' });
    const outcome = await page.evaluate(
      async ({ baseUrl, clientId }) => {
        type Lib = typeof import('../../src/client/index.js');
        const { MareClient, statusDocumentFromEvents } = (
          window as unknown as { MareClientLib: Lib }
        ).MareClientLib;
        const browserMare = new MareClient({ baseUrl });
        const { job_id } = await browserMare.generateTemplates(clientId);
        const statuses: string[] = [];
        const watch = browserMare.watchJob(job_id, { onStatus: (s) => statuses.push(s) });
        const events = [];
        for await (const event of watch) events.push(event);
        const templates = await browserMare.getJobTemplates(job_id);
        const missing = await browserMare
          .getJob('00000000-0000-4000-8000-000000000003')
          .catch((err: { code: string; status: number }) => ({
            code: err.code,
            status: err.status,
          }));
        return {
          job_id,
          seqs: events.map((e) => e.seq),
          result: statusDocumentFromEvents(events),
          templates: templates.length,
          statuses,
          missing,
        };
      },
      { baseUrl: system.mareUrl, clientId: client.id },
    );
    expect(outcome.seqs).toEqual(seqRange(1, outcome.seqs.at(-1) ?? 0));
    expect(outcome.seqs.length).toBeGreaterThan(10);
    expect(outcome.statuses).toEqual(['open', 'closed']);
    expect(outcome.result).toEqual(await mare.getJob(outcome.job_id));
    expect(outcome.templates).toBe(7);
    expect(outcome.missing).toEqual({ code: 'JOB_NOT_FOUND', status: 404 });
    // The browser logs the deliberate 404, and nothing else.
    expect(problems.get(page)).toEqual([
      'console: Failed to load resource: the server responded with a status of 404 (Not Found)',
    ]);
  });

  it('renders a screenshot of finished jobs with one job’s templates open', async () => {
    const client = await mare.createClient({ name: 'Adventure Works', industry: 'Travel' });
    await mare.createValueProposition(client.id, {
      content: 'Trips planned in minutes, not weeks',
      is_active: true,
    });
    const finished: string[] = [];
    for (const id of [client.id, NIL_CLIENT, client.id, client.id]) {
      const { job_id } = await mare.generateTemplates(id);
      await mare.watchJob(job_id).done;
      finished.push(job_id);
    }
    // Newest first: the open job, a completed one, the failed one, another completed one.
    const page = await newPage({ width: 1200, height: 1300 });
    await openDashboard(page);
    const shown = finished.at(-1) ?? '';
    await waitForJobStatus(page, shown, 'completed');
    await jobRow(page, shown).getByRole('button', { name: 'Show templates' }).click();
    await jobRow(page, shown).locator('.template-list li').nth(6).waitFor();
    // Open the first template, as a reader would, then take the picture.
    await jobRow(page, shown).locator('.template-list summary').first().click();
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());

    const image = await page.screenshot({ fullPage: false });
    // docs/dashboard.png is the README's picture: refreshed only on request (UPDATE_SCREENSHOT=1).
    const dirs =
      process.env.UPDATE_SCREENSHOT === '1' ? ['docs', 'test-artifacts'] : ['test-artifacts'];
    for (const dir of dirs) {
      mkdirSync(path.join(ROOT, dir), { recursive: true });
      writeFileSync(path.join(ROOT, dir, 'dashboard.png'), image);
    }
    // A PNG 1200 px wide (width is bytes 16–19 of the IHDR chunk).
    expect(image.subarray(1, 4).toString('ascii')).toBe('PNG');
    expect(image.readUInt32BE(16)).toBe(1200);
    expectNoProblems(page);
  });
});
