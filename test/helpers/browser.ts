import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium, or CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
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
/** Waits in a page: generous, because the machine running the tests may be busy. */
export const PAGE_TIMEOUT_MS = 20_000;

/** Launches Chromium; a missing browser fails with how to install it (never a skip). */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium was not found at ${CHROMIUM}. Install it with \`apt-get install -y chromium\` ` +
        '(`npm run setup:test` does), or point CHROMIUM_PATH at a Chromium binary.',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** A page in its own context, and every console error, page error and failed request it had. */
export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  problems: string[];
}

/**
 * A fresh page that records what went wrong in it, so that a script error, a CSP violation or
 * a missing asset fails the test. Requests matching `expectedAborts` (streams a page closes on
 * purpose) are not failures.
 */
export async function newWatchedPage(
  browser: Browser,
  { expectedAborts }: { expectedAborts?: RegExp } = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (r) => {
    if (!expectedAborts?.test(r.url())) {
      problems.push(`request failed: ${r.url()} (${r.failure()?.errorText ?? ''})`);
    }
  });
  return { context, page, problems };
}

/** A page on its own origin serving one bundled script: every request to mare-api is CORS. */
export interface ScriptPage {
  url: string;
  close(): Promise<void>;
}

/**
 * Bundles `entry` for the browser with esbuild (as any bundler would: one script, no Node
 * built-ins) and serves it at `/` on a free port. `nodePaths` resolves bare imports from
 * another project's node_modules.
 */
export async function serveBundledPage(
  entry: string,
  { title = 'test page', nodePaths = [] }: { title?: string; nodePaths?: string[] } = {},
): Promise<ScriptPage> {
  const bundle = await build({
    entryPoints: [entry],
    absWorkingDir: path.dirname(entry),
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    jsx: 'automatic',
    nodePaths,
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.text ?? '';
  const html =
    `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>${title}</title>` +
    '<div id="root"></div><script type="module" src="/page.js"></script>';
  const server: Server = createServer((req, res) => {
    if (req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    } else {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
