import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientWithProposition, startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { seqRange } from '../helpers/events.js';

/** The command-line client, run for real as a child process against a running system. */

const BIN = path.resolve(import.meta.dirname, '../../bin/triton-events.mjs');

interface Run {
  code: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return {
    code: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    stdout: () => stdout,
    stderr: () => stderr,
  };
}

let system: TestSystem;
let clientId: string;

beforeAll(async () => {
  system = await startSystem({ env: { GENERATION_STEP_MS: '150', SSE_RETRY_MS: '100' } });
  clientId = await createClientWithProposition(system.tritonUrl, 'Acme Health', 'Healthcare');
});

afterAll(() => system?.close());

describe('triton-events CLI', () => {
  it(
    'submit prints the new job id, and watch follows it to the end and prints its templates',
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
      expect(
        lines.filter((l) => l.includes('templates') && l.includes('running')).length,
      ).toBeGreaterThan(0);
      expect(watched.stderr()).toMatch(new RegExp(`Job ${jobId} completed: 7 templates`));
      const out = watched.stdout();
      expect(out).toContain(
        '== 1. Outreach email: Acme Health for Healthcare leaders (outreach_email) ==',
      );
      expect(out.match(/^== \d\. /gm)).toHaveLength(7);
    },
  );

  it(
    'watch resumes after the connection drops and still sees every event once',
    { timeout: 60_000 },
    async () => {
      const submitted = run(['submit', clientId, '--url', system.mareUrl]);
      await submitted.code;
      const jobId = submitted.stdout().trim();
      const watched = run(['watch', jobId, '--json', '--url', system.mareUrl]);
      await waitFor('the first events', () => watched.stdout().split('\n').length > 3);
      system.mare.hub.closeAll();
      expect(await watched.code).toBe(0);
      const seqs = watched
        .stdout()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { seq: number }).seq);
      expect(seqs).toEqual(seqRange(1, seqs.at(-1) ?? 0));
      expect(seqs.length).toBeGreaterThan(10);
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
      const badId = run(['watch', 'not-a-uuid']);
      expect(await badId.code).toBe(2);
      const unknown = run([
        'watch',
        '00000000-0000-4000-8000-000000000000',
        '--url',
        system.mareUrl,
      ]);
      expect(await unknown.code).toBe(1);
      expect(unknown.stderr()).toMatch(/JOB_NOT_FOUND/);
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
