import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HttpApp } from '../../common/http.js';
import type { GenerationQueue } from '../generation-queue.js';

/** Where triton-api serves the queue UI. */
export const QUEUE_UI_PATH = '/admin/queues';

/**
 * Decides whether a request may use the queue UI: it answers the request itself (401, 403…) to
 * refuse it, and leaves it alone to let it through.
 */
export type QueueUiGuard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** What {@link registerQueueUi} shows, and who may see it. */
export interface QueueUiOptions {
  queue: GenerationQueue;
  /**
   * The admin check. Every page, asset and API call of the UI passes through it, so this is
   * the one place access is decided. None yet: the UI is only mounted where the server is
   * reachable from this machine alone unless QUEUE_UI says otherwise.
   */
  guard?: QueueUiGuard;
}

/**
 * bull-board on triton-api: the generation queue's waiting, active, delayed, completed and
 * failed jobs, their data and errors, and retrying or removing them. Its API answers bad input
 * with 4xx JSON in its own shape (`{"error": {"key"}}`), which its page reads.
 *
 * Its static files are served by a version of @fastify/static that loads an ES module with
 * `require()`, which Node does from 20.19 on: hence the project's `engines`.
 */
export async function registerQueueUi(
  app: HttpApp,
  { queue, guard }: QueueUiOptions,
): Promise<void> {
  const board = new FastifyAdapter();
  board.setBasePath(QUEUE_UI_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue)],
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'triton queues' } },
  });
  await app.register(
    async (scope) => {
      if (guard) scope.addHook('onRequest', guard);
      scope.addHook('onSend', async (_request, reply, payload) => {
        // The UI acts on jobs (retry, remove): no other site may frame it or run code in it.
        reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
        if (typeof payload !== 'string' || !isHtml(reply.getHeader('content-type'))) return payload;
        // Its page asks Google for web fonts: an admin page must not call out to a third party
        // (offline, that is a failed request on every load). It falls back to system fonts.
        return payload.replace(/<link\b[^>]*\bfonts\.googleapis\.com[^>]*>/g, '');
      });
      await scope.register(board.registerPlugin());
    },
    { prefix: QUEUE_UI_PATH },
  );
}

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data:",
  // The page's loading placeholder and the UI's components carry inline styles.
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

function isHtml(type: unknown): boolean {
  return typeof type === 'string' && type.startsWith('text/html');
}
