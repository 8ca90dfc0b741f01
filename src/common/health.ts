import { z } from 'zod';
import { redactCredentials } from './error-serializer.js';
import type { HttpApp } from './http.js';

/** A dependency check for `/ready`: resolves when the dependency answers. */
export type ReadinessCheck = () => Promise<unknown>;

const CheckResult = z.object({ status: z.enum(['ok', 'failing']), error: z.string().optional() });

/**
 * `GET /health`: the process is up (liveness). `GET /ready`: every dependency answers within
 * `timeoutMs` (readiness), else 503 naming the one that does not.
 */
export function registerHealthRoutes(
  app: HttpApp,
  service: string,
  checks: Record<string, ReadinessCheck>,
  { timeoutMs = 2000 } = {},
): void {
  app.get(
    '/health',
    {
      config: { access: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up',
        response: {
          200: z.object({
            status: z.literal('ok'),
            service: z.string(),
            uptime_seconds: z.number(),
          }),
        },
      },
    },
    () => ({ status: 'ok' as const, service, uptime_seconds: Math.round(process.uptime()) }),
  );

  app.get(
    '/ready',
    {
      config: { access: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Readiness: Redis and the database answer',
        response: {
          200: z.object({ status: z.literal('ready'), checks: z.record(z.string(), CheckResult) }),
          503: z.object({
            status: z.literal('not_ready'),
            checks: z.record(z.string(), CheckResult),
          }),
        },
      },
    },
    async (_request, reply) => {
      const entries = await Promise.all(
        Object.entries(checks).map(async ([name, check]) => {
          let timer: NodeJS.Timeout | undefined;
          try {
            await Promise.race([
              check(),
              new Promise((_, reject) => {
                timer = setTimeout(
                  () => reject(new Error(`no answer within ${timeoutMs} ms`)),
                  timeoutMs,
                );
              }),
            ]);
            return [name, { status: 'ok' as const }] as const;
          } catch (err) {
            return [
              name,
              {
                status: 'failing' as const,
                error: redactCredentials(err instanceof Error ? err.message : String(err)),
              },
            ] as const;
          } finally {
            clearTimeout(timer);
          }
        }),
      );
      const results: Record<string, { status: 'ok' | 'failing'; error?: string }> = {};
      for (const [name, result] of entries) results[name] = result;
      const ok = entries.every(([, r]) => r.status === 'ok');
      if (ok) return reply.code(200).send({ status: 'ready' as const, checks: results });
      return reply.code(503).send({ status: 'not_ready' as const, checks: results });
    },
  );
}
