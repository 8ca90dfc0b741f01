import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { MareClient } from '../../src/client/index.js';
import { createKeyspace } from '../../src/contract/index.js';
import { createClientWithProposition, startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { seqRange } from '../helpers/events.js';

/**
 * The command-line client, run for real as a child process against a running system. Each
 * template takes 1 s to write, so that its text arrives in several pieces and a job is still
 * running when a second process, however slow to start on a busy machine, cancels it.
 */

const BIN = path.resolve(import.meta.dirname, '../../bin/triton-events.mjs');

interface Run {
  code: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
  /** stdout as it stood after each piece the process wrote. */
  stdoutSeen: string[];
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const stdoutSeen: string[] = [];
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    stdoutSeen.push(stdout);
  });
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return {
    code: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    stdout: () => stdout,
    stderr: () => stderr,
    stdoutSeen,
  };
}

/** What `watch` printed: each template's header line and the text under it, in order. */
function sections(stdout: string): { header: string; body: string }[] {
  const parts = stdout.split(/^(== \d+\. .+ ==)\n/m);
  const found: { header: string; body: string }[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    // Each template's text ends with a line break, and a blank line comes before each header.
    const body = (parts[i + 1] ?? '').replace(/\n\n?$/, '');
    found.push({ header: parts[i] ?? '', body });
  }
  return found;
}

let system: TestSystem;
let mare: MareClient;
let clientId: string;

beforeAll(async () => {
  system = await startSystem({ env: { GENERATION_STEP_MS: '1000', SSE_RETRY_MS: '100' } });
  mare = new MareClient({ baseUrl: system.mareUrl });
  clientId = await createClientWithProposition(system.tritonUrl, 'Acme Health', 'Healthcare');
});

afterAll(() => system?.close());

describe('triton-events CLI', () => {
  it(
    'submit prints the new job id; watch prints each template’s text as it is written, exactly the stored bodies, once (live, or from a snapshot once history expired)',
    { timeout: 60_000 },
    async () => {
      const submitted = run(['submit', clientId, '--url', system.mareUrl]);
      expect(await submitted.code).toBe(0);
      const jobId = submitted.stdout().trim();
      expect(jobId).toMatch(/^[0-9a-f-]{36}$/);

      const watched = run(['watch', jobId, '--url', system.mareUrl]);
      expect(await watched.code).toBe(0);
      // Not a terminal: one progress line per change, ending at 100%.
      const lines = watched.stderr().split('\n');
      expect(lines.some((l) => /\[#{28}\] 100%/.test(l))).toBe(true);
      expect(lines.filter((l) => /running {2}\d\/7 templates$/.test(l))).toHaveLength(7);
      expect(watched.stderr()).toMatch(new RegExp(`Job ${jobId} completed: 7 templates`));

      const stored = await mare.getJobTemplates(jobId);
      const printed = sections(watched.stdout());
      expect(printed.map((s) => /^== (\d)\. .+ \((\w+)\) ==$/.exec(s.header)?.slice(1))).toEqual(
        stored.map((t) => [String(t.position + 1), t.kind]),
      );
      expect(printed.map((s) => s.body)).toEqual(stored.map((t) => t.body));
      expect(printed[0]?.header).toBe('== 1. Outreach email (outreach_email) ==');

      // The text came in pieces as it was written (the job's first templates may have been
      // written before this process connected; the last one, surely not): stdout held the last
      // template's text at more than one unfinished length.
      const last = stored.at(-1)?.body ?? '';
      const partial = new Set(
        watched.stdoutSeen
          .map((out) => sections(out)[6]?.body ?? '')
          .filter((body) => body !== '' && body.length < last.length && last.startsWith(body))
          .map((body) => body.length),
      );
      expect(partial.size).toBeGreaterThanOrEqual(2);

      // Its history gone, the job comes back as one snapshot with its text: printed once too.
      const redis = new Redis(system.redis.url);
      try {
        await redis.del(createKeyspace(system.config.common.keyPrefix).jobHistoryKey(jobId));
      } finally {
        redis.disconnect();
      }
      const again = run(['watch', jobId, '--url', system.mareUrl]);
      expect(await again.code).toBe(0);
      expect(sections(again.stdout())).toEqual(printed);
    },
  );

  it(
    'watch --json prints one event per line and resumes after the connection drops, every event once',
    { timeout: 60_000 },
    async () => {
      const submitted = run(['submit', clientId, '--url', system.mareUrl]);
      await submitted.code;
      const jobId = submitted.stdout().trim();
      const watched = run(['watch', jobId, '--json', '--url', system.mareUrl]);
      await waitFor('the first events', () => watched.stdout().split('\n').length > 3);
      system.mare.hub.closeAll();
      expect(await watched.code).toBe(0);
      const events = watched
        .stdout()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { seq: number; event_type: string; job_id: string });
      const seqs = events.map((e) => e.seq);
      expect(seqs).toEqual(seqRange(1, seqs.at(-1) ?? 0));
      expect(seqs.length).toBeGreaterThan(10);
      expect(events.every((e) => e.job_id === jobId)).toBe(true);
      expect(events.some((e) => e.event_type === 'job:delta')).toBe(true);
      expect(events.at(-1)?.event_type).toBe('job:completed');
    },
  );

  it(
    'cancel stops a running job: watch keeps the stored text, says so and exits 3; a finished job answers 409',
    { timeout: 60_000 },
    async () => {
      // Submitted and watched by one process, so that the watch follows the job from its start
      // and the second template's first words arrive about one template into the job, leaving
      // the cancel command five more to start.
      const watched = run(['submit', clientId, '--watch', '--url', system.mareUrl]);
      const jobId = await waitFor('the job id', () => /^(\S{36})\n/.exec(watched.stdout())?.[1]);
      // The second template is being written: the first is stored.
      await waitFor('the second template’s text', () => sections(watched.stdout())[1]?.body, {
        timeoutMs: 20_000,
      });

      const cancelled = run(['cancel', jobId, '--url', system.mareUrl]);
      expect(await cancelled.code).toBe(0);
      expect(['running\n', 'cancelled\n']).toContain(cancelled.stdout());
      expect(cancelled.stderr()).toMatch(new RegExp(`job ${jobId}|Job ${jobId} cancelled`));

      expect(await watched.code).toBe(3);
      const doc = await mare.getJob(jobId);
      expect(doc.status).toBe('cancelled');
      expect(watched.stderr()).toContain(
        `Job ${jobId} was cancelled after ${doc.generation_duration_ms} ms; it kept ${doc.template_count} template${doc.template_count === 1 ? '' : 's'}\n`,
      );
      const kept = await mare.getJobTemplates(jobId);
      expect(kept.length).toBe(doc.template_count);
      expect(kept.length).toBeGreaterThanOrEqual(1);
      expect(kept.length).toBeLessThan(7);
      // The kept templates exactly; after them, at most the unfinished one, said to be lost.
      const printed = sections(watched.stdout());
      expect(printed.slice(0, kept.length).map((s) => s.body)).toEqual(kept.map((t) => t.body));
      expect(printed.length - kept.length).toBeLessThanOrEqual(1);
      if (printed.length > kept.length) {
        expect(watched.stderr()).toContain(
          `Template ${kept.length + 1} was being written when the job ended; its text was not kept.`,
        );
      }

      const again = run(['cancel', jobId, '--url', system.mareUrl]);
      expect(await again.code).toBe(1);
      expect(again.stderr()).toMatch(/JOB_FINISHED: .*already cancelled/);

      const failed = await mare.generateTemplates('00000000-0000-0000-0000-000000000000');
      await mare.watchJob(failed.job_id).done;
      const late = run(['cancel', failed.job_id, '--json', '--url', system.mareUrl]);
      expect(await late.code).toBe(1);
      expect(late.stderr()).toMatch(/JOB_FINISHED: .*already failed/);
      expect(late.stdout()).toBe('');
    },
  );

  it(
    'submit --watch of a failing job exits 1 with the job’s error message',
    { timeout: 60_000 },
    async () => {
      const watched = run([
        'submit',
        '00000000-0000-0000-0000-000000000000',
        '--watch',
        '--url',
        system.mareUrl,
      ]);
      expect(await watched.code).toBe(1);
      expect(watched.stderr()).toMatch(
        /failed: Template generation failed: client 00000000-0000-0000-0000-000000000000 does not exist/,
      );
    },
  );

  it(
    'exits 2 with the usage for bad arguments, and 1 with the server’s error for an unknown job',
    { timeout: 60_000 },
    async () => {
      const noCommand = run([]);
      expect(await noCommand.code).toBe(2);
      expect(noCommand.stderr()).toContain('Usage: triton-events');
      expect(noCommand.stderr()).toContain('cancel <job_id>');
      const badId = run(['watch', 'not-a-uuid']);
      expect(await badId.code).toBe(2);
      const noId = run(['cancel']);
      expect(await noId.code).toBe(2);
      const unknown = run([
        'watch',
        '00000000-0000-4000-8000-000000000000',
        '--url',
        system.mareUrl,
      ]);
      expect(await unknown.code).toBe(1);
      expect(unknown.stderr()).toMatch(/JOB_NOT_FOUND/);
      const unknownCancel = run([
        'cancel',
        '00000000-0000-4000-8000-000000000000',
        '--url',
        system.mareUrl,
      ]);
      expect(await unknownCancel.code).toBe(1);
      expect(unknownCancel.stderr()).toMatch(/JOB_NOT_FOUND/);
      const unreachable = run([
        'watch',
        '00000000-0000-4000-8000-000000000000',
        '--url',
        'http://127.0.0.1:9',
      ]);
      expect(await unreachable.code).toBe(1);
    },
  );
});
