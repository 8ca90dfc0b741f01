import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newWatchedPage, type WatchedPage } from '../helpers/browser.js';
import { http } from '../helpers/system.js';
import { seedTenant, startAuthSystem, type AuthSystem, type Tenant } from '../helpers/tenants.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The dashboard in Chromium against a gateway with AUTH=on and stream tokens that last 2 s: it
 * asks for a key, keeps it in this tab only, shows the tenant its own jobs live through a feed
 * opened with a stream token (EventSource sends no header), opens the feed again with a fresh
 * token once the old one expired, and asks for a key again when its key is revoked or forgotten.
 */

let auth: AuthSystem;
let browser: Browser;
let acme: Tenant;
let beta: Tenant;
const pages: WatchedPage[] = [];

/** A refusal the test provokes on purpose (a bad key, an expired token): the browser logs it. */
const EXPECTED_REFUSAL = /status of 401/;

beforeAll(async () => {
  auth = await startAuthSystem({
    env: { GENERATION_STEP_MS: '60', SSE_RETRY_MS: '200', STREAM_TOKEN_TTL_SECONDS: '2' },
  });
  acme = await seedTenant(auth, 'acme');
  beta = await seedTenant(auth, 'beta');
  browser = await launchChromium();
}, 90_000);

afterEach(async () => {
  for (const { context } of pages.splice(0)) await context.close();
});

afterAll(async () => {
  await browser?.close();
  await auth?.close();
});

/** A page, and the feed connections it opens (their URLs and whether they sent a header). */
async function openPage(): Promise<WatchedPage & { feeds: Request[] }> {
  const watched = await newWatchedPage(browser, { expectedAborts: /\/v1\/triton\/events/ });
  pages.push(watched);
  const feeds: Request[] = [];
  watched.page.on('request', (r) => {
    if (r.url().includes('/v1/triton/events')) feeds.push(r);
  });
  await watched.page.goto(auth.system.mareUrl);
  return { ...watched, feeds };
}

async function giveKey(page: Page, key: string): Promise<void> {
  await page.locator('#key-input').fill(key);
  await page.getByRole('button', { name: 'Use this key' }).click();
}

function problems(watched: WatchedPage): string[] {
  return watched.problems.filter((p) => !EXPECTED_REFUSAL.test(p));
}

async function waitForJob(page: Page, jobId: string, status: string): Promise<void> {
  await page.waitForSelector(`li[data-job-id="${jobId}"][data-status="${status}"]`);
}

/** The stream token in a feed request's URL. */
function tokenOf(request: Request): string {
  return new URL(request.url()).searchParams.get('token') ?? '';
}

describe('the dashboard with auth on', () => {
  it('asks for a key, keeps it in this tab only, and shows the tenant its own jobs live', async () => {
    const watched = await openPage();
    const { page, feeds } = watched;
    await page.waitForSelector('#key-card:not([hidden])');
    expect(await page.locator('#main').isHidden()).toBe(true);

    await giveKey(page, `tek_${'x'.repeat(12)}_${'y'.repeat(43)}`);
    await page.waitForSelector('#key-status:has-text("The key was refused")');
    expect(await page.locator('#main').isHidden()).toBe(true);

    await giveKey(page, acme.key);
    await page.waitForSelector('#connection[data-state="live"]');
    expect(await page.locator('#identity').textContent()).toContain(`Tenant ${acme.name}`);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(1);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await watched.context.cookies()).toEqual([]);

    // The feed carries a token, never the key.
    expect(feeds.length).toBeGreaterThan(0);
    for (const feed of feeds) {
      expect(tokenOf(feed)).not.toBe('');
      expect(feed.url()).not.toContain(acme.key);
      expect(await feed.allHeaders()).not.toHaveProperty('authorization');
    }

    const { job_id: theirs } = await beta.mare.generateTemplates(beta.clientId);
    const { job_id: ours } = await acme.mare.generateTemplates(acme.clientId);
    await waitForJob(page, ours, 'completed');
    // The other tenant's job ran first: had the feed carried it, it would be on the page.
    await beta.mare.watchJob(theirs).done;
    expect(await page.locator(`li[data-job-id="${theirs}"]`).count()).toBe(0);
    expect(await page.content()).not.toContain(beta.secret);

    // Its own clients only, and new ones made with the key.
    const options = await page.locator('#client-select option').allTextContents();
    expect(options.join('\n')).toContain(acme.clientName);
    expect(options.join('\n')).not.toContain(beta.clientName);
    expect(problems(watched)).toEqual([]);
  });

  it('opens its feed again with a fresh token once the old one expired', async () => {
    const watched = await openPage();
    const { page, feeds } = watched;
    await giveKey(page, acme.key);
    await page.waitForSelector('#connection[data-state="live"]');
    const first = tokenOf(feeds[0]!);
    await waitFor(
      'the feed token to expire',
      async () =>
        (await http('HEAD', `${auth.system.mareUrl}/v1/triton/events?token=${first}`)).status ===
        401
          ? true
          : undefined,
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    // A dropped connection: EventSource tries its old URL, is refused, and the page starts over.
    auth.system.mare.hub.closeAll('retry: 200\n\n');
    await waitFor('a feed with a fresh token', () =>
      feeds.some((f) => tokenOf(f) !== first) ? true : undefined,
    );
    await page.waitForSelector('#connection[data-state="live"]');
    const { job_id: jobId } = await acme.mare.generateTemplates(acme.clientId);
    await waitForJob(page, jobId, 'completed');
    expect(problems(watched)).toEqual([]);
  });

  it('asks again when its key is revoked, and forgets what it showed when told to', async () => {
    const { key, info } = await auth.keys.create({ tenant: acme.name });
    const watched = await openPage();
    const { page } = watched;
    await giveKey(page, key);
    await page.waitForSelector('#connection[data-state="live"]');
    const { job_id: jobId } = await acme.mare.generateTemplates(acme.clientId);
    await waitForJob(page, jobId, 'completed');

    await auth.keys.revoke(info.id);
    await waitFor('the gateway to refuse the key', async () =>
      (
        await http('GET', `${auth.system.mareUrl}/v1/triton/auth`, undefined, {
          authorization: `Bearer ${key}`,
        })
      ).status === 401
        ? true
        : undefined,
    );
    await page.getByRole('button', { name: 'Generate templates' }).click();
    await page.waitForSelector('#key-status:has-text("The key was refused")');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await page.locator('li[data-job-id]').count()).toBe(0);

    await giveKey(page, acme.key);
    await page.waitForSelector('#connection[data-state="live"]');
    await page.getByRole('button', { name: 'Forget key' }).click();
    await page.waitForSelector('#key-card:not([hidden])');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(problems(watched)).toEqual([]);
  });
});
