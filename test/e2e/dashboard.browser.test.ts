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
import {
  startOpenAiTestServer,
  streamOf,
  type OpenAiTestServer,
} from '../helpers/openai-test-server.js';
import { startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { seqRange } from '../helpers/events.js';

/**
 * The dashboard (`GET /` on mare-api) in a real browser: Debian's Chromium driven by
 * playwright-core, against the whole system. Jobs take 7 steps of 120 ms so that a progress bar
 * can be seen moving; the gateway tells browsers to reconnect after 300 ms. A second system,
 * whose templates take 600 ms each, serves the tests that watch text being written and cancel
 * running jobs.
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
/** The all-jobs feed, whose connections some tests cut on purpose (see cutFeed). */
const FEED_URL = /\/v1\/triton\/events/;

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
    if (m.type() !== 'error') return;
    // The browser reports each feed connection an outage stopped (see cutFeed) as an error.
    if (m.text().endsWith('net::ERR_FAILED') && FEED_URL.test(m.location().url)) return;
    seen.push(`console: ${m.text()}`);
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

async function openDashboard(page: Page, url = system.mareUrl): Promise<void> {
  await page.goto(url);
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

/** A template card as the page shows it. */
interface CardSeen {
  index: number;
  title: string;
  text: string;
  state: string;
  partial: boolean;
}

/** The template cards of a job's row, in order. */
function cardsOf(page: Page, jobId: string): Promise<CardSeen[]> {
  return page.evaluate(
    (id) =>
      Array.from(document.querySelectorAll(`li[data-job-id="${id}"] .template-list > li`)).map(
        (li) => {
          const el = li as HTMLElement;
          return {
            index: Number(el.dataset.index),
            title: el.querySelector('h3')?.textContent ?? '',
            text: el.querySelector('.body')?.textContent ?? '',
            state: el.dataset.state ?? '',
            partial: el.dataset.partial === 'true',
          };
        },
      ),
    jobId,
  );
}

/** Records every version of every template card's text a page shows, from the first paint. */
async function recordTexts(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen: { job: string; index: number; text: string; state: string; partial: boolean }[] =
      [];
    const last = new Map<string, string>();
    (window as unknown as { textsSeen: typeof seen }).textsSeen = seen;
    new MutationObserver(() => {
      for (const li of Array.from(document.querySelectorAll<HTMLElement>('.template-list > li'))) {
        const job = li.closest<HTMLElement>('li[data-job-id]')?.dataset.jobId ?? '';
        const card = {
          job,
          index: Number(li.dataset.index),
          text: li.querySelector('.body')?.textContent ?? '',
          state: li.dataset.state ?? '',
          partial: li.dataset.partial === 'true',
        };
        const key = `${job}:${card.index}`;
        const value = JSON.stringify(card);
        if (last.get(key) === value) continue;
        last.set(key, value);
        seen.push(card);
      }
    }).observe(document, {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
      attributeFilter: ['data-state', 'data-partial'],
    });
  });
}

function textsSeen(page: Page, jobId: string) {
  return page.evaluate(
    (id) =>
      (
        window as unknown as {
          textsSeen: {
            job: string;
            index: number;
            text: string;
            state: string;
            partial: boolean;
          }[];
        }
      ).textsSeen.filter((t) => t.job === id),
    jobId,
  );
}

/**
 * Every text the page ever showed in a stored template's card was part of the stored body: the
 * beginning of it, or (marked partial, after events were lost) a piece of it. Nothing repeated,
 * nothing from elsewhere.
 */
function expectOnlyStoredText(
  seen: { index: number; text: string; partial: boolean }[],
  stored: { position: number; body: string }[],
): void {
  for (const t of seen) {
    const body = stored.find((s) => s.position === t.index)?.body;
    if (body === undefined) continue;
    if (t.partial) expect(body).toContain(t.text);
    else
      expect(body.startsWith(t.text), `template ${t.index}: ${JSON.stringify(t.text)}`).toBe(true);
  }
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

    // Watched as it ran, its templates are open: the stored ones, titled once it ended.
    const toggle = row.locator('.templates-toggle');
    expect((await toggle.textContent())?.trim()).toBe('Hide templates');
    expect(await toggle.getAttribute('aria-expanded')).toBe('true');
    const templates = await mare.getJobTemplates(jobId);
    expect(templates.every((t) => t.client_id === clientId)).toBe(true);
    await waitFor(
      'the titles',
      async () =>
        (await row.locator('.template-list h3').allTextContents()).join() ===
        templates.map((t) => t.title).join(),
    );
    expect((await cardsOf(page, jobId)).map((c) => c.text)).toEqual(templates.map((t) => t.body));
    expect(await row.locator('.cancel-button').isHidden()).toBe(true);

    // Hide them and show them again with the keyboard.
    await toggle.focus();
    await page.keyboard.press('Enter');
    expect(await toggle.getAttribute('aria-expanded')).toBe('false');
    expect((await toggle.textContent())?.trim()).toBe('Show templates');
    expect(await row.locator('.templates').isHidden()).toBe(true);
    await page.keyboard.press('Enter');
    expect(await toggle.getAttribute('aria-expanded')).toBe('true');
    await row.locator('.template-list li').nth(6).waitFor();
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

    // The failure drill (a job for the nil client), submitted elsewhere: it reaches the page
    // through the feed.
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
    // The original guide's page as it stands, with the job id and this run's gateway filled in.
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
});

describe('live text and cancellation', { timeout: 60_000 }, () => {
  /** Templates take 600 ms each: their text arrives in several pieces, and jobs can be caught running. */
  let slow: TestSystem;
  let slowMare: MareClient;
  let clientId: string;

  beforeAll(async () => {
    slow = await startSystem({ env: { GENERATION_STEP_MS: '600', SSE_RETRY_MS: '300' } });
    slowMare = new MareClient({ baseUrl: slow.mareUrl });
    const client = await slowMare.createClient({ name: 'Adventure Works', industry: 'Travel' });
    await slowMare.createValueProposition(client.id, {
      content: 'Trips planned in minutes, not weeks',
      is_active: true,
    });
    clientId = client.id;
  }, 90_000);

  afterAll(() => slow?.close());

  /** Waits until the page shows a job's template `index` being written, with some text. */
  async function waitForWriting(
    page: Page,
    jobId: string,
    index: number,
    minLength = 1,
  ): Promise<void> {
    await page.waitForFunction(
      ([id, i, min]) => {
        const card = document.querySelector<HTMLElement>(
          `li[data-job-id="${id}"] .template-list > li[data-index="${i}"]`,
        );
        const text = card?.querySelector('.body')?.textContent ?? '';
        return card?.dataset.state === 'writing' && text.length >= min;
      },
      [jobId, index, minLength] as const,
    );
  }

  /** Keeps the page's feed from reconnecting (as a network outage would), until `restore`. */
  async function cutFeed(page: Page): Promise<() => Promise<void>> {
    const pattern = '**/v1/triton/events*';
    await page.route(pattern, (route) => route.abort());
    slow.mare.hub.closeAll();
    await page.waitForSelector('#connection:not([data-state="live"])');
    return () => page.unroute(pattern);
  }

  it('renders a screenshot: a job being written, a cancelled one, a failed one and a finished one', async () => {
    const page = await newPage({ width: 1200, height: 960 });
    await openDashboard(page, slow.mareUrl);
    // Oldest first, so newest on top: completed, failed, cancelled, running.
    const { job_id: completed } = await slowMare.generateTemplates(clientId);
    await waitForWriting(page, completed, 0);
    const { job_id: failed } = await slowMare.generateTemplates(NIL_CLIENT);
    const { job_id: cancelled } = await slowMare.generateTemplates(clientId);
    await waitForWriting(page, cancelled, 1);
    await slowMare.cancelJob(cancelled);
    await waitForJobStatus(page, cancelled, 'cancelled');
    await waitForJobStatus(page, failed, 'failed');
    await waitForJobStatus(page, completed, 'completed');
    const { job_id: running } = await slowMare.generateTemplates(clientId);
    onTestFinished(() => void slowMare.cancelJob(running).catch(() => undefined));
    // The finished job's reader has closed its templates.
    await jobRow(page, completed).getByRole('button', { name: 'Hide templates' }).click();
    await waitForWriting(page, running, 3, 250);
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());

    // Animations stopped at their start: the caret where text is being written shows.
    const image = await page.screenshot({ fullPage: false, animations: 'disabled' });
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

  it("fills in each template's card as its text is written, and ends with exactly the stored text", async () => {
    const page = await newPage();
    await recordTexts(page);
    await openDashboard(page, slow.mareUrl);
    const { job_id } = await slowMare.generateTemplates(clientId);
    const row = jobRow(page, job_id);
    // Open as soon as text arrives, the card being written open too.
    await waitForWriting(page, job_id, 0);
    expect(await row.locator('.templates-toggle').getAttribute('aria-expanded')).toBe('true');
    expect(
      await row.locator('.template-list > li[data-index="0"] details').getAttribute('open'),
    ).toBe('');
    await waitForJobStatus(page, job_id, 'completed');

    const stored = await slowMare.getJobTemplates(job_id);
    expect(stored).toHaveLength(7);
    // Once it ended: every card holds its stored text and title, finished, nothing partial.
    await waitFor(
      'the titles',
      async () =>
        (await cardsOf(page, job_id)).map((c) => c.title).join() ===
        stored.map((t) => t.title).join(),
    );
    const cards = await cardsOf(page, job_id);
    expect(cards.map((c) => c.text)).toEqual(stored.map((t) => t.body));
    expect(cards.every((c) => c.state === 'done' && !c.partial)).toBe(true);

    // While it ran, each card's text grew: the same card at several unfinished lengths.
    const seen = await textsSeen(page, job_id);
    for (const index of [0, 6]) {
      const lengths = new Set(
        seen
          .filter((t) => t.index === index && t.state === 'writing' && t.text !== '')
          .map((t) => t.text.length),
      );
      expect(lengths.size, `template ${index}`).toBeGreaterThanOrEqual(2);
    }
    expect(seen.some((t) => t.partial)).toBe(false);
    expectOnlyStoredText(seen, stored);
    expectNoProblems(page);
  });

  it('cancels a running job from its Cancel button, and shows it cancelled with the templates it kept', async () => {
    const page = await newPage();
    await openDashboard(page, slow.mareUrl);
    const { job_id } = await slowMare.generateTemplates(clientId);
    const row = jobRow(page, job_id);
    await waitForWriting(page, job_id, 1);
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith(`/v1/triton/jobs/${job_id}/cancel`)),
      row.getByRole('button', { name: 'Cancel job' }).click(),
    ]);
    expect(answer.status()).toBe(202);
    await waitForJobStatus(page, job_id, 'cancelled');

    const doc = await slowMare.getJob(job_id);
    expect(doc.status).toBe('cancelled');
    const kept = await slowMare.getJobTemplates(job_id);
    expect(kept.length).toBe(doc.template_count);
    expect(kept.length).toBeGreaterThanOrEqual(1);
    expect(kept.length).toBeLessThan(7);
    expect(await row.locator('.badge').textContent()).toBe('cancelled');
    expect(await row.locator('.job-count').textContent()).toBe(
      `${kept.length} of 7 templates kept`,
    );
    expect(await row.getByRole('button', { name: 'Cancel job' }).isHidden()).toBe(true);
    // The kept templates, and not the one that was being written.
    await waitFor(
      'the kept templates, titled',
      async () =>
        (await cardsOf(page, job_id)).map((c) => c.title).join() ===
        kept.map((t) => t.title).join(),
    );
    expect((await cardsOf(page, job_id)).map((c) => c.text)).toEqual(kept.map((t) => t.body));
    expect(await page.locator('#announcer').textContent()).toContain(
      `cancelled: kept ${kept.length} template`,
    );
    expectNoProblems(page);
  });

  it('says why a job cannot be cancelled when it had already ended (409), and shows how it ended', async () => {
    const page = await newPage();
    await openDashboard(page, slow.mareUrl);
    const { job_id } = await slowMare.generateTemplates(clientId);
    const row = jobRow(page, job_id);
    await waitForWriting(page, job_id, 0);
    // The page loses its feed; meanwhile the job is cancelled from elsewhere.
    const restore = await cutFeed(page);
    await slowMare.cancelJob(job_id);
    await waitFor(
      'the job to end',
      async () => (await slowMare.getJob(job_id)).status === 'cancelled',
    );
    expect(await row.getAttribute('data-status')).toBe('running');

    await row.getByRole('button', { name: 'Cancel job' }).click();
    const note = row.locator('.job-note');
    await note.waitFor();
    expect(await note.textContent()).toBe(
      `Could not cancel: Job ${job_id} already cancelled; it cannot be cancelled.`,
    );
    // The page asked how it ended, without waiting for its feed.
    await waitForJobStatus(page, job_id, 'cancelled');
    expect(await page.locator('#announcer').textContent()).toContain('Could not cancel');
    await restore();
    await page.waitForSelector('#connection[data-state="live"]');
    expect(await row.getAttribute('data-status')).toBe('cancelled');
    // The browser logs the 409 it was answered, and nothing else.
    expect(problems.get(page)).toEqual([
      'console: Failed to load resource: the server responded with a status of 409 (Conflict)',
    ]);
  });

  it('keeps every template’s text whole through a resync: nothing lost, nothing repeated', async () => {
    const page = await newPage();
    await recordTexts(page);
    await openDashboard(page, slow.mareUrl);
    const { job_id } = await slowMare.generateTemplates(clientId);
    await waitForWriting(page, job_id, 1);
    // The page's feed drops and the job's history goes: its Last-Event-ID cannot be resumed.
    const restore = await cutFeed(page);
    const keyspace = createKeyspace(slow.config.common.keyPrefix);
    const redis = new Redis(slow.redis.url);
    try {
      await redis.del(keyspace.jobHistoryKey(job_id));
      // Events the page never gets: the rest of a template's text, and its being stored...
      await waitFor(
        'a template stored while the page is away',
        async () => (await slowMare.getJob(job_id)).template_count >= 3,
        { timeoutMs: 20_000 },
      );
      // ...nor from the recent history it reloads: there is a hole in what it hears of the job.
      await redis.xtrim(keyspace.globalHistoryKey, 'MAXLEN', 0);
    } finally {
      redis.disconnect();
    }
    await restore();
    await waitForJobStatus(page, job_id, 'completed');

    const stored = await slowMare.getJobTemplates(job_id);
    await waitFor(
      'the titles',
      async () =>
        (await cardsOf(page, job_id)).map((c) => c.title).join() ===
        stored.map((t) => t.title).join(),
    );
    const cards = await cardsOf(page, job_id);
    expect(cards.map((c) => c.text)).toEqual(stored.map((t) => t.body));
    expect(cards.every((c) => c.state === 'done' && !c.partial)).toBe(true);
    const seen = await textsSeen(page, job_id);
    expectOnlyStoredText(seen, stored);
    // The template being written when the feed dropped showed only what came after the resync.
    expect(seen.some((t) => t.index === 1 && t.partial)).toBe(true);
    expectNoProblems(page);
  });
});

describe('with a language model', { timeout: 60_000 }, () => {
  let model: OpenAiTestServer;
  let withModel: TestSystem;

  beforeAll(async () => {
    model = await startOpenAiTestServer();
    withModel = await startSystem({
      env: {
        GENERATOR: 'openai',
        OPENAI_BASE_URL: model.url,
        OPENAI_MODEL: 'test-model',
        OPENAI_API_KEY: 'sk-browser-0123456789',
        JOB_ATTEMPTS: '1',
      },
    });
  }, 90_000);

  afterAll(async () => {
    await withModel?.close();
    await model?.close();
  });

  it('shows what a job’s model calls cost: tokens and model time, for the job and each template', async () => {
    const modelMare = new MareClient({ baseUrl: withModel.mareUrl });
    const client = await modelMare.createClient({ name: 'Litware', industry: 'Insurance' });
    await modelMare.createValueProposition(client.id, {
      content: 'Claims settled in a day',
      is_active: true,
    });
    model.answer(
      ...Array.from({ length: 7 }, (_, i) =>
        streamOf(`Template ${i + 1} for Litware.`, {
          size: 6,
          usage: { prompt_tokens: 100, completion_tokens: 20 + i },
        }),
      ),
    );
    const page = await newPage();
    await openDashboard(page, withModel.mareUrl);
    const { job_id } = await modelMare.generateTemplates(client.id);
    await waitForJobStatus(page, job_id, 'completed');
    const row = jobRow(page, job_id);
    const usage = row.locator('.job-usage');
    // 7 × 100 prompt tokens, 20 + 21 + … + 26 completion tokens.
    expect(await usage.textContent()).toMatch(/^861 tokens · \d+(\.\d+)? m?s model time$/);
    expect(await usage.getAttribute('title')).toBe(
      '700 prompt + 161 completion tokens, 7 requests',
    );
    await waitFor('the templates’ own usage', async () =>
      (await row.locator('.template-state').allTextContents()).every((t) =>
        / tokens · .* model time$/.test(t),
      ),
    );
    expect(await row.locator('.template-state').first().textContent()).toMatch(/^120 tokens · /);
    expectNoProblems(page);
  });
});
