import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { MareClient } from '../../src/client/index.js';
import { createHttpApp } from '../../src/common/http.js';
import { createLogger } from '../../src/common/logger.js';
import { GENERATION_QUEUE } from '../../src/contract/index.js';
import { QUEUE_UI_PATH, registerQueueUi } from '../../src/triton/api/queue-ui.js';
import { launchChromium, newWatchedPage } from '../helpers/browser.js';
import { http, startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The queue UI (bull-board at /admin/queues on triton-api) in Chromium, against the whole
 * system: the generation queue, its jobs by state, and retrying a failed one.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const NIL_CLIENT = '00000000-0000-0000-0000-000000000000';

let system: TestSystem;
let mare: MareClient;
let browser: Browser;
let clientId: string;

beforeAll(async () => {
  system = await startSystem({ env: { GENERATION_STEP_MS: '40' } });
  mare = new MareClient({ baseUrl: system.mareUrl });
  const client = await mare.createClient({ name: 'Queued Ltd', industry: 'Retail' });
  await mare.createValueProposition(client.id, { content: 'Checkout lines that move' });
  clientId = client.id;
  browser = await launchChromium();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await system?.close();
});

async function openPage(url: string): Promise<{ page: Page; problems: string[] }> {
  const watched = await newWatchedPage(browser);
  onTestFinished(() => watched.context.close());
  await watched.page.goto(url);
  return watched;
}

/** The UI's page of the generation queue's jobs in one state. */
function queuePage(status: string): string {
  return `${system.tritonUrl}${QUEUE_UI_PATH}/queue/${GENERATION_QUEUE}?status=${status}`;
}

/** A finished job, through mare-api as any user would submit it. */
async function finishedJob(client: string): Promise<string> {
  const { job_id: jobId } = await mare.generateTemplates(client);
  await mare.watchJob(jobId).done;
  return jobId;
}

describe('the queue UI', () => {
  it('shows the generation queue and a job that was just submitted, with no console error', async () => {
    const jobId = await finishedJob(clientId);
    // Served with a policy that keeps other sites from framing it, and without third-party fonts.
    const html = await http<string>('GET', `${system.tritonUrl}${QUEUE_UI_PATH}`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(html.body).not.toContain('fonts.googleapis.com');

    const overview = await openPage(`${system.tritonUrl}${QUEUE_UI_PATH}`);
    await overview.page.getByText(GENERATION_QUEUE).first().waitFor();
    expect(overview.problems).toEqual([]);

    const { page, problems } = await openPage(queuePage('completed'));
    await page.getByText(jobId).first().waitFor();
    const image = await page.screenshot();
    mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
    writeFileSync(path.join(ROOT, 'test-artifacts', 'queue-ui.png'), image);
    // docs/queue-ui.png is the README's picture: refreshed only on request (UPDATE_SCREENSHOT=1).
    if (process.env.UPDATE_SCREENSHOT === '1') {
      writeFileSync(path.join(ROOT, 'docs', 'queue-ui.png'), image);
    }
    expect(problems).toEqual([]);
  });

  it('retries a failed job from its card, and the worker leaves the ended job as it was', async () => {
    // An unknown client fails at once, without retries: the job lands in the failed list.
    const jobId = await finishedJob(NIL_CLIENT);
    const queue = system.triton.queue;
    await waitFor(
      'the job in the failed list',
      async () => (await queue.getJobState(jobId)) === 'failed',
    );

    const { page, problems } = await openPage(queuePage('failed'));
    // The job's card: its actions are icon buttons (retry is the circular arrows).
    const card = page.locator('div[class^="card-"]', { has: page.locator(`a[href*="${jobId}"]`) });
    await card.locator('button:has(svg.lucide-refresh-cw)').click();
    await page.getByRole('button', { name: 'Confirm' }).click();
    // Retried: the queue hands it to a worker again, which finds its record already ended
    // (watchers were told it failed) and completes it without writing or publishing anything.
    await waitFor(
      'the retried job to go through the queue',
      async () => (await queue.getJobState(jobId)) === 'completed',
    );
    const record = await http<{ status: string }>('GET', `${system.tritonUrl}/jobs/${jobId}`);
    expect(record.body.status).toBe('failed');
    expect(problems).toEqual([]);
  });

  it('is not served when QUEUE_UI is off', async () => {
    const other = await startSystem({ env: { QUEUE_UI: 'false' }, redis: system.redis });
    onTestFinished(() => other.close());
    expect((await http('GET', `${other.tritonUrl}${QUEUE_UI_PATH}`)).status).toBe(404);
  });

  it('passes every page, asset and API call through its one guard', async () => {
    const app = createHttpApp({ logger: createLogger({ logLevel: 'silent', logFormat: 'json' }) });
    const asked: string[] = [];
    await registerQueueUi(app, {
      queue: system.triton.queue,
      guard: async (request, reply) => {
        asked.push(request.url);
        await reply.code(403).send({ error: { code: 'FORBIDDEN', message: 'Admins only' } });
      },
    });
    onTestFinished(() => app.close());
    const urls = [
      QUEUE_UI_PATH,
      `${QUEUE_UI_PATH}/api/queues`,
      `${QUEUE_UI_PATH}/static/images/logo.svg`,
    ];
    for (const url of urls) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(403);
    }
    const retry = await app.inject({
      method: 'PUT',
      url: `${QUEUE_UI_PATH}/api/queues/${GENERATION_QUEUE}/retry/failed`,
    });
    expect(retry.statusCode).toBe(403);
    expect(asked).toHaveLength(urls.length + 1);
  });
});
