import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { createLogger, type Logger } from '../../src/common/logger.js';
import { RepeatedErrorLog } from '../../src/common/repeated-error-log.js';
import { startRedis } from '../helpers/redis.js';
import { parseJsonStrict } from '../helpers/strict-json.js';

const PASSWORD = 'correct-horse-battery-staple';

/** A logger writing into a string, JSON lines or the human-readable format. */
function capture(format: 'json' | 'pretty' = 'json'): { logger: Logger; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return {
    logger: createLogger({ logLevel: 'info', logFormat: format }, out),
    text: () => text,
  };
}

function lines(text: string): Record<string, unknown>[] {
  return text
    .trim()
    .split('\n')
    .map((line) => parseJsonStrict(line) as Record<string, unknown>);
}

let redis: RedisServer | undefined;

beforeAll(async () => {
  redis = await startRedis();
  const admin = new Redis(redis.url);
  await admin.config('SET', 'requirepass', PASSWORD);
  admin.disconnect();
});

afterAll(async () => {
  await redis?.close();
});

/** The error a real Redis gives a client whose password it refuses (the client sent it with HELLO). */
async function wrongPasswordError(password: string): Promise<Error> {
  const client = new Redis(`redis://:${password}@127.0.0.1:${redis!.port}`, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  try {
    return await new Promise<Error>((resolve) => {
      client.once('error', resolve);
      client.connect().catch(() => undefined);
    });
  } finally {
    client.disconnect();
  }
}

describe('the logger', () => {
  it('logs a Redis authentication failure without the password, the AUTH arguments or a stack', async () => {
    const wrong = 'not-the-password-0123456789';
    const err = await wrongPasswordError(wrong);
    // What ioredis hands over: the failed command with the password among its arguments.
    expect(JSON.stringify((err as Error & { command?: unknown }).command)).toContain(wrong);

    for (const format of ['json', 'pretty'] as const) {
      const { logger, text } = capture(format);
      logger.child({ service: 'triton-api' }).error({ err }, 'Worker error');
      logger.warn(err, 'Redis failed');
      expect(text(), format).toContain('WRONGPASS');
      expect(text(), format).not.toContain(wrong);
      expect(text(), format).not.toContain('decoder.js');
    }
    const { logger, text } = capture();
    logger.error({ err }, 'Worker error');
    expect(lines(text())[0]?.err).toEqual({
      type: err.constructor.name,
      message: err.message,
      command: { name: 'hello' },
    });
  });

  it('hides the credentials of any URL in messages, fields, errors, causes and stacks', () => {
    const { logger, text } = capture();
    const url = `redis://default:${PASSWORD}@cache.internal:6380/2`;
    const cause = new Error(`connect to ${url} refused`);
    logger.warn(
      { target: url, err: new Error(`gave up on ${url}`, { cause }) },
      `Reconnecting to ${url}`,
    );
    logger.info(`Plain message naming postgres://triton:${PASSWORD}@db/triton`);
    logger.info({ err: `failed: rediss://${PASSWORD}@host:6379` }, 'A message as err');
    expect(text()).not.toContain(PASSWORD);
    const [first, second, third] = lines(text());
    expect(first?.msg).toBe('Reconnecting to redis://default:***@cache.internal:6380/2');
    expect(first?.target).toBe('redis://default:***@cache.internal:6380/2');
    expect(first?.err).toMatchObject({
      message: 'gave up on redis://default:***@cache.internal:6380/2',
      cause: { message: 'connect to redis://default:***@cache.internal:6380/2 refused' },
    });
    expect((first?.err as { stack: string }).stack).toMatch(
      /^Error: gave up on redis:\/\/default:\*\*\*@/,
    );
    expect(second?.msg).toBe('Plain message naming postgres://triton:***@db/triton');
    expect(third?.err).toBe('failed: rediss://***@host:6379');
  });

  it('writes each key once when a child logger’s key is logged again, and never repeats level, time or msg', () => {
    const { logger, text } = capture();
    const child = logger.child({ service: 'triton-worker' }).child({ job_id: 'j1' });
    child.warn({ job_id: 'j1', err: 'it failed' }, 'Job j1 failed');
    child.info({ level: 99, time: 0, msg: 'other', service: 'x', kept: true }, 'With a message');
    logger.info({ msg: 'Only message' });
    const [failed, other, only] = lines(text());
    expect(failed).toMatchObject({ service: 'triton-worker', job_id: 'j1', msg: 'Job j1 failed' });
    expect(other).toMatchObject({ level: 30, service: 'triton-worker', msg: 'With a message' });
    expect(other?.kept).toBe(true);
    expect(only?.msg).toBe('Only message');
  });
});

describe('RepeatedErrorLog', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('logs the first of a kind of failure at once, then once per interval with the number left out', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { logger, text } = capture();
    const errors = new RepeatedErrorLog(logger, { intervalMs: 60_000 });
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    for (let i = 0; i < 50; i++) errors.error(refused, 'Worker error');
    errors.warn(new Error('WRONGPASS invalid password'), 'Worker error');
    errors.warn(refused, 'Queue error', { queue: 'generation' });
    vi.advanceTimersByTime(59_000);
    errors.error(refused, 'Worker error');
    vi.advanceTimersByTime(1000);
    errors.error(refused, 'Worker error');

    const logged = lines(text());
    expect(logged.map((l) => [l.msg, (l.err as { message: string }).message, l.repeats])).toEqual([
      ['Worker error', 'connect ECONNREFUSED 127.0.0.1:6379', undefined],
      ['Worker error', 'WRONGPASS invalid password', undefined],
      ['Queue error', 'connect ECONNREFUSED 127.0.0.1:6379', undefined],
      ['Worker error', 'connect ECONNREFUSED 127.0.0.1:6379', 50],
    ]);
    expect(logged[2]?.queue).toBe('generation');
    expect(logged.map((l) => l.level)).toEqual([50, 40, 40, 50]);
  });
});

describe('API keys and stream tokens in log lines', () => {
  const key = `tek_AbCdEfGhIjKl_${'s'.repeat(43)}`;
  const token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';

  it('hide the secret of a key (its id stays) and any token, in messages, fields and errors', () => {
    for (const format of ['json', 'pretty'] as const) {
      const { logger, text } = capture(format);
      logger.info(`key ${key} and /v1/triton/events?token=${token}&history=5`);
      logger.info(
        { url: `/v1/triton/jobs/x/subscribe?token=${token}`, header: `Bearer ${key}` },
        'seen',
      );
      logger.warn({ err: new Error(`refused ${key} with ${token}`) }, 'failed');
      const out = text();
      expect(out).toContain('tek_AbCdEfGhIjKl_***');
      expect(out).toContain('token=***');
      expect(out).not.toContain('s'.repeat(43));
      expect(out).not.toContain(token);
      expect(out).not.toContain(token.split('.')[2] ?? token);
    }
  });
});
