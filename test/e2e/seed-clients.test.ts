import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, startSystem, type TestSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import {
  COMPLETED_LIFECYCLE,
  expectWholeRun,
  withoutDeltas,
  type EventData,
} from '../helpers/events.js';

/**
 * The original system's client snippets, as its guides wrote them, against the real system: curl
 * and jq in bash, and the Python httpx loop run by /usr/bin/python3. Only the hosts change (the
 * guides say localhost:8000 and localhost:16000; the system here listens on free ports). Part of
 * the compatibility suite (docs/contract.md): "seed" in the names here means those guides.
 */

// The testing guide, "Terminal 2: Trigger Template Generation", verbatim.
const TERMINAL_2 = `
# Get a client ID first
curl http://localhost:8000/clients/ | jq '.clients[0].id'

# Or create new client
CLIENT_RESPONSE=$(curl -s -X POST http://localhost:8000/clients/ \\
  -H "Content-Type: application/json" \\
  -d '{
    "name": "Test Client - Message Broker",
    "industry": "Healthcare"
  }')

CLIENT_ID=$(echo $CLIENT_RESPONSE | jq -r '.id')
echo "Client ID: $CLIENT_ID"

# Create value proposition
VP_RESPONSE=$(curl -s -X POST "http://localhost:8000/clients/$CLIENT_ID/value-propositions" \\
  -H "Content-Type: application/json" \\
  -d '{
    "content": "We reduce hospital readmissions by 30% through AI-powered care coordination",
    "is_active": true
  }')

VP_ID=$(echo $VP_RESPONSE | jq -r '.id')
echo "Value Prop ID: $VP_ID"

# Submit generation job via mare-api
JOB_RESPONSE=$(curl -s -X POST "http://localhost:16000/v1/triton/clients/$CLIENT_ID/generate-templates" \\
  -H "Content-Type: application/json")

JOB_ID=$(echo $JOB_RESPONSE | jq -r '.job_id')
echo "Job ID: $JOB_ID"
`;

// The testing guide, Test 4.
const SUBSCRIBE = `curl -N "http://localhost:16000/v1/triton/jobs/$JOB_ID/subscribe"`;

// The testing guide, Test 5 "AFTER (Message Broker)", the loop that reads the stream.
const SUBSCRIBE_LOOP = `
curl -N "http://localhost:16000/v1/triton/jobs/$JOB_ID/subscribe" 2>&1 | \\
while read line; do
    if [[ $line == data:* ]]; then
        DATA=$(echo $line | sed 's/^data: //')
        STATUS=$(echo $DATA | jq -r '.status')
        echo "Status: $STATUS"

        if [ "$STATUS" = "completed" ] || [ "$STATUS" = "failed" ]; then
            break
        fi
    fi
done
`;

// The testing guide, Tests 3 and 6: cache-first lookups.
const LOOKUP = `curl -s "http://localhost:16000/v1/triton/jobs/$JOB_ID" | jq '.'`;
const LOOKUP_STATUS = `curl -s "http://localhost:16000/v1/triton/jobs/$JOB_ID" | jq '.status'`;

// The client guide, "Option 3: Traditional Polling (Fallback)".
const POLLING = `
while true; do
    STATUS=$(curl -s "http://localhost:16000/v1/triton/jobs/$JOB_ID" | jq -r '.status')
    echo "Status: $STATUS"

    if [ "$STATUS" = "completed" ] || [ "$STATUS" = "failed" ]; then
        break
    fi

    sleep 2
done
`;

// The testing guide, Test 7.
const FAILING_JOB = `curl -X POST "http://localhost:16000/v1/triton/clients/00000000-0000-0000-0000-000000000000/generate-templates"`;

// The client guide, "Python (httpx)", verbatim.
const PYTHON_HTTPX = `
import httpx
import json

job_id = "YOUR_JOB_ID"

with httpx.stream(
    "GET",
    f"http://localhost:16000/v1/triton/jobs/{job_id}/subscribe"
) as response:
    for line in response.iter_lines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            print(f"Status: {event['status']}")

            if event['status'] in ['completed', 'failed']:
                break
`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SETUP_HINT = 'run `npm run setup:test`, which installs it';

let system: TestSystem;
let jobId: string;

/** A snippet with the guides' hosts replaced by this system's. */
function local(snippet: string): string {
  return snippet
    .replaceAll('http://localhost:8000', system.tritonUrl)
    .replaceAll('http://localhost:16000', system.mareUrl);
}

interface Run {
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves with the exit code once the command has exited. */
  exited: Promise<number | null>;
  kill(): void;
}

const running = new Set<Run>();

/** Runs a command with its output collected as it arrives. */
function run(command: string, args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const result: Run = {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited: new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => {
        running.delete(result);
        resolve(code);
      });
    }),
    kill: () => child.kill('SIGKILL'),
  };
  running.add(result);
  return result;
}

/** Runs a bash snippet (with the guides' hosts replaced) to its end: exit code and output. */
async function bash(
  snippet: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = run('bash', ['-c', local(snippet)], env);
  const timer = setTimeout(() => child.kill(), timeoutMs);
  try {
    const code = await child.exited;
    return { code, stdout: child.stdout, stderr: child.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Fails with a message that says how to get the tool, rather than skipping. */
function requireTool(what: string, command: string, args: string[]): void {
  const probe = spawnSync(command, args, { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new Error(`${what} is needed to run the seed's client snippets: ${SETUP_HINT}.`);
  }
}

/** Pauses the queue, so that a job stays queued until the test lets it run. */
async function holdJobs(): Promise<void> {
  await system.triton.queue.pause();
}

async function releaseJobs(): Promise<void> {
  await system.triton.queue.resume();
}

beforeAll(async () => {
  requireTool('curl', 'curl', ['--version']);
  requireTool('jq', 'jq', ['--version']);
  system = await startSystem({ env: { GENERATION_STEP_MS: '30' } });
});

afterAll(async () => {
  for (const child of running) child.kill();
  await system?.close();
});

describe("the seed's curl and jq snippets", () => {
  it('Terminal 2 creates a client and a value proposition through triton-api and submits a job through mare-api', async () => {
    await holdJobs();
    const { code, stdout, stderr } = await bash(TERMINAL_2);
    expect(code, stderr).toBe(0);
    const printed: Record<string, string> = {};
    for (const [, label = '', value = ''] of stdout.matchAll(
      /^(Client ID|Value Prop ID|Job ID): (.*)$/gm,
    )) {
      printed[label] = value;
    }
    expect(printed['Client ID']).toMatch(UUID);
    expect(printed['Value Prop ID']).toMatch(UUID);
    expect(printed['Job ID']).toMatch(UUID);
    jobId = printed['Job ID'] ?? '';

    const job = await http<{ status: string; client_id: string }>(
      'GET',
      `${system.tritonUrl}/jobs/${jobId}`,
    );
    expect(job.body).toMatchObject({ status: 'queued', client_id: printed['Client ID'] });
  });

  it("`curl …/clients/ | jq '.clients[0].id'` prints a client's id, quoted", async () => {
    const { code, stdout } = await bash(
      `curl http://localhost:8000/clients/ | jq '.clients[0].id'`,
    );
    expect(code).toBe(0);
    const clients = await http<{ clients: Array<{ id: string }> }>(
      'GET',
      `${system.tritonUrl}/clients/`,
    );
    expect(stdout).toBe(`${JSON.stringify(clients.body.clients[0]?.id)}\n`);
  });

  it(
    '`curl -N …/subscribe` streams the events as they happen and returns by itself after the seed comment',
    { timeout: 60_000 },
    async () => {
      const curl = run('bash', ['-c', local(SUBSCRIBE)], { JOB_ID: jobId });
      // The job is still held in the queue: what arrives now arrived before the job ran.
      try {
        await waitFor('the queued event through curl', () => curl.stdout.includes('"job:queued"'), {
          timeoutMs: 20_000,
        });
        expect(curl.stdout).not.toContain('"job:started"');
      } finally {
        await releaseJobs();
      }
      expect(await curl.exited).toBe(0);

      const data = curl.stdout
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => JSON.parse(line.slice('data: '.length)) as Record<string, unknown>);
      expect(withoutDeltas(data as EventData[]).map((e) => e.event_type)).toEqual(
        COMPLETED_LIFECYCLE,
      );
      expectWholeRun(data as EventData[]);
      expect(data.at(-1)).toMatchObject({ job_id: jobId, status: 'completed', template_count: 7 });
      expect(curl.stdout.trimEnd().endsWith(': Connection closing - job completed')).toBe(true);
    },
  );

  it('the Test 5 loop reads `data:` lines with sed and jq until the job completes', async () => {
    const { code, stdout } = await bash(SUBSCRIBE_LOOP, { JOB_ID: jobId });
    expect(code).toBe(0);
    const statuses = stdout.trim().split('\n');
    expect(statuses[0]).toBe('Status: queued');
    expect(statuses).toContain('Status: running');
    expect(statuses.at(-1)).toBe('Status: completed');
  });

  it('the cache-first lookups with `| jq` answer the finished job', async () => {
    const whole = await bash(LOOKUP, { JOB_ID: jobId });
    expect(whole.code).toBe(0);
    expect(JSON.parse(whole.stdout)).toMatchObject({
      job_id: jobId,
      status: 'completed',
      template_count: 7,
    });
    const status = await bash(LOOKUP_STATUS, { JOB_ID: jobId });
    expect(status.stdout).toBe('"completed"\n');
  });

  it('the polling fallback loop stops at the final status', async () => {
    const { code, stdout } = await bash(POLLING, { JOB_ID: jobId });
    expect(code).toBe(0);
    expect(stdout).toBe('Status: completed\n');
  });

  it('Test 7: submitting for the all-zero client id is accepted, and the job then fails', async () => {
    const { code, stdout } = await bash(FAILING_JOB);
    expect(code).toBe(0);
    const accepted = JSON.parse(stdout) as { job_id: string; status: string };
    expect(accepted.status).toBe('queued');
    const failed = await waitFor('the job to fail', async () => {
      const res = await http<{ status: string; error_message?: string }>(
        'GET',
        `${system.mareUrl}/v1/triton/jobs/${accepted.job_id}`,
      );
      return res.body.status === 'failed' && res.body;
    });
    expect(failed.error_message).toMatch(/does not exist/);
  });
});

describe("the seed's Python httpx snippet", () => {
  it(
    'run by /usr/bin/python3, prints each status as it arrives until completed',
    { timeout: 60_000 },
    async () => {
      const probe = spawnSync('/usr/bin/python3', ['-c', 'import httpx'], { encoding: 'utf8' });
      if (probe.error || probe.status !== 0) {
        throw new Error(
          `/usr/bin/python3 cannot import httpx (${(probe.error?.message ?? probe.stderr).trim()}): ${SETUP_HINT} (Debian package python3-httpx).`,
        );
      }
      const clients = await http<{ clients: Array<{ id: string }> }>(
        'GET',
        `${system.tritonUrl}/clients/`,
      );
      const clientId = clients.body.clients[0]?.id ?? '';
      await holdJobs();
      const submitted = await http<{ job_id: string }>(
        'POST',
        `${system.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
      );
      const newJob = submitted.body.job_id;

      const script = local(PYTHON_HTTPX).replace('"YOUR_JOB_ID"', JSON.stringify(newJob));
      // Unbuffered, so that each print reaches the test when it happens.
      const python = run('/usr/bin/python3', ['-c', script], { PYTHONUNBUFFERED: '1' });
      try {
        await waitFor(
          'the queued status from python',
          () => python.stdout.includes('Status: queued'),
          {
            timeoutMs: 20_000,
          },
        );
        expect(python.stdout).not.toContain('Status: running');
      } finally {
        await releaseJobs();
      }
      const code = await python.exited;
      expect(code, python.stderr).toBe(0);
      // One line per event: queued, then running (started, each delta, each progress), then
      // completed.
      const lines = python.stdout.trim().split('\n');
      expect(lines[0]).toBe('Status: queued');
      expect(lines.at(-1)).toBe('Status: completed');
      const running = lines.slice(1, -1);
      expect(running.length).toBeGreaterThanOrEqual(8);
      expect(new Set(running)).toEqual(new Set(['Status: running']));
    },
  );
});
