import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStatusDocument, TemplateList } from '../../src/contract/index.js';
import {
  startOpenAiTestServer,
  statusAnswer,
  streamOf,
  type OpenAiTestServer,
} from '../helpers/openai-test-server.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The whole system with GENERATOR=openai against a scripted OpenAI-compatible server: jobs get
 * the model's texts, and a model that cannot be had fails the job with a message for people.
 */

const API_KEY = 'sk-e2e-0123456789abcdef';
let model: OpenAiTestServer;
let system: TestSystem;
let clientId: string;

beforeAll(async () => {
  model = await startOpenAiTestServer();
  system = await startSystem({
    env: {
      GENERATOR: 'openai',
      OPENAI_BASE_URL: model.url,
      OPENAI_MODEL: 'test-model',
      OPENAI_API_KEY: API_KEY,
      OPENAI_MAX_RETRIES: '1',
      JOB_ATTEMPTS: '1',
    },
  });
  clientId = await createClientWithProposition(system.tritonUrl);
});

afterAll(async () => {
  await system?.close();
  await model?.close();
});

async function runJob(): Promise<JobStatusDocument> {
  const submitted = await http<{ job_id: string }>(
    'POST',
    `${system.tritonUrl}/clients/${clientId}/generate-templates`,
  );
  expect(submitted.status).toBe(202);
  const jobId = submitted.body.job_id;
  return waitFor(`job ${jobId} to end`, async () => {
    const res = await http<JobStatusDocument>('GET', `${system.tritonUrl}/jobs/${jobId}`);
    return res.body.status === 'completed' || res.body.status === 'failed' ? res.body : undefined;
  });
}

describe('GENERATOR=openai', () => {
  it("stores the model's seven answers, without their wrapping, one streamed request each", async () => {
    const texts = Array.from({ length: 7 }, (_, i) => `Template ${i + 1}\n\nHi {{first_name}},`);
    model.answer(...texts.map((t) => streamOf(`\`\`\`markdown\n${t}\n\`\`\`\n`, { size: 5 })));
    const job = await runJob();
    expect(job.status).toBe('completed');
    const { body } = await http<TemplateList>(
      'GET',
      `${system.tritonUrl}/jobs/${job.job_id}/templates`,
    );
    expect(body.templates.map((t) => t.body)).toEqual(texts);
    expect(body.templates[0]?.title).toBe(
      'Outreach email: Test Client - Message Broker for Healthcare leaders',
    );
    expect(model.requests).toHaveLength(7);
    expect(model.requests.every((r) => r.headers.authorization === `Bearer ${API_KEY}`)).toBe(true);
  });

  it('fails the job with a message that names the server and the template, not the key', async () => {
    model.answer(statusAnswer(503, 'overloaded'), statusAnswer(503, 'overloaded'));
    const job = await runJob();
    expect(job.status).toBe('failed');
    expect(job.error_message).toBe(
      `Template generation failed: the language model at ${model.url} answered 503 twice ` +
        'while writing the outreach email',
    );
  });

  it('counts the model requests and tokens in the metrics', async () => {
    const text = await (await fetch(`${system.tritonUrl}/metrics`)).text();
    expect(text).toMatch(/triton_llm_requests_total\{[^}]*outcome="ok"[^}]*\} 7/);
    expect(text).toMatch(/triton_llm_requests_total\{[^}]*outcome="server_error"[^}]*\} 2/);
    expect(text).toMatch(/triton_llm_tokens_total\{[^}]*kind="completion"[^}]*\} \d+/);
    expect(text).not.toContain(API_KEY);
  });
});
