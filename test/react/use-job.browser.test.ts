import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { MareClient } from '../../src/client/index.js';
import {
  launchChromium,
  newWatchedPage,
  serveBundledPage,
  type ScriptPage,
} from '../helpers/browser.js';
import { startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import type { PageRecord } from './use-job-page.js';

/**
 * `useJob` in Chromium: a small React page (use-job-page.tsx, bundled by esbuild) follows real
 * jobs on a running system. Templates take 400 ms each, their text published every 30 ms, so
 * that text can be seen growing and a job is still running when the test acts on it.
 */

let system: TestSystem;
let mare: MareClient;
let browser: Browser;
let served: ScriptPage;
let clientId: string;

beforeAll(async () => {
  system = await startSystem({
    env: { GENERATION_STEP_MS: '400', DELTA_INTERVAL_MS: '30', SSE_RETRY_MS: '200' },
  });
  mare = new MareClient({ baseUrl: system.mareUrl });
  const client = await mare.createClient({ name: 'Hooked Ltd', industry: 'Fishing' });
  await mare.createValueProposition(client.id, { content: 'Nets that mend themselves' });
  clientId = client.id;
  browser = await launchChromium();
  served = await serveBundledPage(path.join(import.meta.dirname, 'use-job-page.tsx'), {
    title: 'useJob',
  });
}, 90_000);

afterAll(async () => {
  await served?.close();
  await browser?.close();
  await system?.close();
});

/** Opens the page on a job (or none); fails the test on any page problem. */
async function openPage(jobId: string | null): Promise<{ page: Page; problems: string[] }> {
  // The hook closes streams on purpose (unmount, job switch, the end): not failures.
  const watched = await newWatchedPage(browser, {
    expectedAborts: /\/v1\/triton\/jobs\/[^/]+\/subscribe/,
  });
  onTestFinished(() => watched.context.close());
  const query = new URLSearchParams({ mare: system.mareUrl, ...(jobId ? { job: jobId } : {}) });
  await watched.page.goto(`${served.url}?${query.toString()}`);
  return watched;
}

function record(page: Page): Promise<PageRecord> {
  return page.evaluate(() => window.record);
}

/** Waits until the rendered job shows `status`. */
async function waitForStatus(page: Page, status: string): Promise<void> {
  await page.waitForFunction(
    (want) => document.querySelector('section')?.dataset.status === want,
    status,
  );
}

/** The templates' texts as rendered. */
function renderedTexts(page: Page): Promise<string[]> {
  return page.locator('section pre').allTextContents();
}

async function storedBodies(jobId: string): Promise<string[]> {
  return (await mare.getJobTemplates(jobId)).map((t) => t.body);
}

/** mare-api's count of open job streams (`mare_sse_connections{stream="job"}`). */
async function openJobStreams(): Promise<number> {
  const text = await (await fetch(`${system.mareUrl}/metrics`)).text();
  const match = /^mare_sse_connections\{[^}]*\bstream="job"[^}]*\} (\d+)$/m.exec(text);
  return match ? Number(match[1]) : 0;
}

/** Every text rendered is a prefix of the template's final body: text only ever grows. */
function expectOnlyGrowth(rendered: string[][], bodies: string[]): void {
  for (const texts of rendered) {
    texts.forEach((text, i) => expect(bodies[i]?.startsWith(text), text).toBe(true));
  }
}

describe('useJob in a browser', () => {
  it('renders each template’s text as it streams in, ending equal to the stored bodies', async () => {
    // The page watches from before the job starts, so that every piece of text arrives live.
    const { page, problems } = await openPage(null);
    const { job_id: jobId } = await mare.generateTemplates(clientId);
    await page.evaluate((id) => window.page.watch(id), jobId);
    await waitForStatus(page, 'completed');
    const bodies = await storedBodies(jobId);
    expect(bodies).toHaveLength(7);
    expect(await renderedTexts(page)).toEqual(bodies);
    expect(await page.locator('section').getAttribute('data-progress')).toBe('100');
    expect(await page.locator('section').getAttribute('data-result')).toBe('completed');

    const { texts, connections } = await record(page);
    expectOnlyGrowth(texts, bodies);
    // Every template was seen part-written, more than once: text arrived in pieces as written.
    bodies.forEach((body, i) => {
      const partial = new Set(texts.map((t) => t[i] ?? '').filter((t) => t !== '' && t !== body));
      expect(partial.size, `template ${i}`).toBeGreaterThanOrEqual(2);
    });
    expect(connections).toEqual(['idle', 'connecting', 'open', 'closed']);
    expect(problems).toEqual([]);
  });

  it('carries on after the gateway drops every stream, without losing or repeating text', async () => {
    const { job_id: jobId } = await mare.generateTemplates(clientId);
    const { page, problems } = await openPage(jobId);
    // Mid-job: some text is on the page, and the job is far from done.
    await page.waitForFunction(() => (document.querySelector('pre')?.textContent ?? '') !== '');
    system.mare.hub.closeAll();
    await waitForStatus(page, 'completed');
    const bodies = await storedBodies(jobId);
    expect(await renderedTexts(page)).toEqual(bodies);

    const { texts, connections } = await record(page);
    expectOnlyGrowth(texts, bodies);
    expect(connections.slice(0, 4)).toEqual(['connecting', 'open', 'reconnecting', 'open']);
    expect(connections.at(-1)).toBe('closed');
    expect(problems).toEqual([]);
  });

  it('closes its stream when the component unmounts, while the job still runs', async () => {
    await waitFor('earlier pages’ streams to be gone', async () => (await openJobStreams()) === 0);
    const { job_id: jobId } = await mare.generateTemplates(clientId);
    const { page, problems } = await openPage(jobId);
    await waitFor('the page’s stream on the gateway', async () => (await openJobStreams()) === 1);

    await page.evaluate(() => window.page.unmount());
    await page.locator('#unmounted').waitFor();
    await waitFor('the gateway to count no job stream', async () => (await openJobStreams()) === 0);
    // The stream ended because the hook closed it, not because the job did.
    expect((await mare.getJob(jobId)).status).toBe('running');
    expect(problems).toEqual([]);
  });

  it('follows the new job when jobId changes, closing the old one’s stream', async () => {
    const first = (await mare.generateTemplates(clientId)).job_id;
    const { page, problems } = await openPage(first);
    const watched = () => system.mare.hub.watchedJobIds().sort().join();
    await waitFor('the first job watched', () => watched() === first);
    const second = (await mare.generateTemplates(clientId)).job_id;
    await page.evaluate((id) => window.page.watch(id), second);
    await waitFor('the second job watched, and the first no more', () => watched() === second);
    // The first job's stream ended because the hook closed it, not because the job did.
    expect((await mare.getJob(first)).status).not.toMatch(/completed|failed|cancelled/);
    await waitForStatus(page, 'completed');
    expect(await renderedTexts(page)).toEqual(await storedBodies(second));
    expect(problems).toEqual([]);
  });

  it('cancel() stops the job, and the page shows it cancelled with the text it kept', async () => {
    const { job_id: jobId } = await mare.generateTemplates(clientId);
    const { page, problems } = await openPage(jobId);
    await page.waitForFunction(
      () => document.querySelector('section')?.dataset.status === 'running',
    );
    expect(await page.evaluate(() => window.page.cancel())).toBe('accepted');
    await waitForStatus(page, 'cancelled');
    expect(await page.locator('section').getAttribute('data-result')).toBe('cancelled');
    const kept = await storedBodies(jobId);
    expect(kept.length).toBeLessThan(7);
    // Stored templates render exactly; a template cut off mid-way may show its draft after them.
    const texts = await renderedTexts(page);
    expect(texts.slice(0, kept.length)).toEqual(kept);
    // Cancelling an ended job is no error: the page already shows how it ended.
    expect(await page.evaluate(() => window.page.cancel())).toBe('accepted');
    // The browser logs the 409 that said so, and nothing else.
    expect(problems).toEqual([
      'console: Failed to load resource: the server responded with a status of 409 (Conflict)',
    ]);
  });

  it('reports an unknown job as an error and stops', async () => {
    const { page, problems } = await openPage('00000000-0000-4000-8000-000000000009');
    await page.locator('section .error').waitFor();
    expect(await page.locator('section .error').textContent()).toBe('MareApiError');
    await page.waitForFunction(
      () => document.querySelector('section')?.dataset.connection === 'closed',
    );
    // The browser logs the 404 it was answered; nothing else went wrong.
    expect(problems).toEqual([
      'console: Failed to load resource: the server responded with a status of 404 (Not Found)',
    ]);
  });
});
