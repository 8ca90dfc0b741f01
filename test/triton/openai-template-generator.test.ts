import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/common/config.js';
import { createLogger } from '../../src/common/logger.js';
import { TritonMetrics } from '../../src/triton/triton-metrics.js';
import { createTemplateGenerator } from '../../src/triton/worker/create-template-generator.js';
import { GenerationError } from '../../src/triton/worker/generation-error.js';
import {
  OpenAiTemplateGenerator,
  retryAfter,
  type OpenAiTemplateGeneratorOptions,
} from '../../src/triton/worker/openai-template-generator.js';
import { CONTINUE_PROMPT, SYSTEM_PROMPT } from '../../src/triton/worker/template-briefs.js';
import type {
  GenerationInput,
  TemplateGenerator,
  WriteTemplateRequest,
} from '../../src/triton/worker/template-generator.js';
import {
  startOpenAiTestServer,
  statusAnswer,
  streamOf,
  type OpenAiTestServer,
} from '../helpers/openai-test-server.js';
import { freePort } from '../helpers/ports.js';

const INPUT: GenerationInput = {
  clientName: 'Test Client - Message Broker',
  industry: 'Healthcare',
  valueProposition: 'We reduce hospital readmissions by 30% through AI-powered care coordination',
};

const EMAIL = [
  'Subject: Fewer readmissions, starting this quarter',
  '',
  'Hi {{first_name}},',
  '',
  'Test Client - Message Broker helps hospitals cut readmissions by 30%.',
  '',
  'Would Tuesday or Thursday afternoon suit you for 20 minutes?',
  '',
  'Best regards,',
  '{{sender_name}}',
].join('\n');

let server: OpenAiTestServer;
let registry: Registry;
let metrics: TritonMetrics;

beforeEach(async () => {
  server = await startOpenAiTestServer();
  registry = new Registry();
  metrics = new TritonMetrics(registry);
});

afterEach(async () => {
  await server.close();
});

/** A generator against the test server, with timings small enough for tests. */
function generator(options: Partial<OpenAiTemplateGeneratorOptions> = {}): OpenAiTemplateGenerator {
  return new OpenAiTemplateGenerator({
    baseUrl: server.url,
    model: 'test-model',
    timeoutMs: 1000,
    backoffMs: 20,
    metrics,
    ...options,
  });
}

/** Writes one template, recording every delta and when it came. */
async function write(gen: TemplateGenerator, request: Partial<WriteTemplateRequest> = {}) {
  const deltas: { text: string; at: number }[] = [];
  const started = performance.now();
  const written = await gen.write({
    kind: 'outreach_email',
    position: 0,
    input: INPUT,
    prefix: '',
    signal: new AbortController().signal,
    onText: (text) => deltas.push({ text, at: performance.now() - started }),
    ...request,
  });
  return {
    written,
    deltas,
    text: deltas.map((d) => d.text).join(''),
    ms: performance.now() - started,
  };
}

/** The error a write rejects with. */
async function failure(
  gen: TemplateGenerator,
  request: Partial<WriteTemplateRequest> = {},
): Promise<GenerationError> {
  const started = performance.now();
  try {
    await write(gen, request);
  } catch (err) {
    expect(err).toBeInstanceOf(GenerationError);
    (err as GenerationError & { ms: number }).ms = performance.now() - started;
    return err as GenerationError;
  }
  throw new Error('write() succeeded');
}

async function requestCounts(): Promise<Record<string, number>> {
  const { values } = await metrics.llmRequests.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.outcome), v.value]));
}

describe('OpenAiTemplateGenerator', () => {
  it('streams the answer as it arrives and stores exactly the joined deltas', async () => {
    server.answer(streamOf(EMAIL, { size: 12, delayMs: 15 }));
    const { written, deltas, text, ms } = await write(generator());
    expect(text).toBe(EMAIL);
    expect(deltas.length).toBeGreaterThan(10);
    // Live: the first text arrived long before the answer was over.
    expect(deltas[0]?.at ?? Infinity).toBeLessThan(ms / 2);
    expect(written.title).toBe(
      'Outreach email: Test Client - Message Broker for Healthcare leaders',
    );
    expect(written.requests).toBe(1);
    expect(written.model_ms).toBeGreaterThan(0);
    expect(written.usage).toEqual(server.requests[0]?.usage);
    expect(written.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('sends one streamed request per template with the client, its proposition and the brief', async () => {
    server.answer(streamOf('Headline 1: Fewer readmissions'));
    await write(generator({ temperature: 0.3, maxTokens: 400 }), { kind: 'ad_copy', position: 6 });
    const [request] = server.requests;
    expect(request?.path).toBe('/v1/chat/completions');
    expect(request?.body).toMatchObject({
      model: 'test-model',
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.3,
      max_tokens: 400,
    });
    const [system, user, ...more] = request?.body.messages ?? [];
    expect(more).toEqual([]);
    expect(system).toEqual({ role: 'system', content: SYSTEM_PROMPT });
    expect(user?.role).toBe('user');
    expect(user?.content).toContain('Client: Test Client - Message Broker');
    expect(user?.content).toContain('Industry: Healthcare');
    expect(user?.content).toContain(`Value proposition: ${INPUT.valueProposition}`);
    expect(user?.content).toContain('"Headline 1: "');
  });

  it('writes a brief for every kind, and reports the kinds and its name', async () => {
    const gen = generator();
    expect(gen.name).toBe('openai:test-model');
    for (const [position, kind] of gen.kinds.entries()) {
      server.answer(streamOf(`Text for ${kind}`));
      const { text, written } = await write(gen, { kind, position });
      expect(text).toBe(`Text for ${kind}`);
      expect(written.title).toContain(INPUT.clientName);
    }
    const briefs = server.requests.map((r) => r.body.messages[1]?.content);
    expect(new Set(briefs).size).toBe(7);
  });

  it('strips a code fence and blank space around the answer on the stream', async () => {
    server.answer(streamOf(`\n\`\`\`markdown\n${EMAIL}\n\`\`\`\n`, { size: 3 }));
    const { text, deltas } = await write(generator());
    expect(text).toBe(EMAIL);
    expect(deltas.length).toBeGreaterThan(20);
    expect(deltas[0]?.text).toBe('Su');
  });

  it('retries 429 and 5xx, waiting as long as Retry-After says', async () => {
    server.answer(
      statusAnswer(429, 'Rate limit reached', { 'retry-after': '1' }),
      statusAnswer(502, 'Bad gateway'),
      streamOf(EMAIL),
    );
    const { text, written } = await write(generator());
    expect(text).toBe(EMAIL);
    expect(written.requests).toBe(3);
    const [first, second] = server.requests;
    expect((second?.receivedAt ?? 0) - (first?.answeredAt ?? Infinity)).toBeGreaterThanOrEqual(
      1000,
    );
    expect(await requestCounts()).toEqual({ rate_limited: 1, server_error: 1, ok: 1 });
  });

  it('caps the wait that Retry-After asks for', async () => {
    server.answer(statusAnswer(503, 'busy', { 'retry-after': '3600' }), streamOf(EMAIL));
    const { text, ms } = await write(generator({ maxRetryWaitMs: 100 }));
    expect(text).toBe(EMAIL);
    expect(ms).toBeLessThan(1000);
  });

  it('reads Retry-After in seconds, as a date, and retry-after-ms', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    const headers = (h: Record<string, string>) => new Headers(h);
    expect(retryAfter(headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfter(headers({ 'retry-after': '0.5' }), now)).toBe(500);
    expect(retryAfter(headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:03 GMT' }), now)).toBe(3000);
    expect(retryAfter(headers({ 'retry-after': 'Tue, 31 Dec 2024 00:00:00 GMT' }), now)).toBe(0);
    expect(retryAfter(headers({ 'retry-after-ms': '250', 'retry-after': '9' }), now)).toBe(250);
    expect(retryAfter(headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfter(headers({}), now)).toBeUndefined();
    expect(retryAfter(undefined, now)).toBeUndefined();
  });

  it('gives up on a 503 storm with a clear message, within seconds with the default settings', async () => {
    for (let i = 0; i < 5; i++) server.answer(statusAnswer(503, 'Service Unavailable'));
    const gen = new OpenAiTemplateGenerator({ baseUrl: server.url, model: 'llama3.1' });
    const err = await failure(gen);
    expect(err.message).toBe(
      `Template generation failed: the language model at http://127.0.0.1:${server.port}/v1 ` +
        'answered 503 4 times while writing the outreach email',
    );
    expect(err).toMatchObject({ code: 'MODEL_UNAVAILABLE', retryable: true });
    expect(server.requests).toHaveLength(4);
    // Three backoffs of about 0.5, 1 and 2 s.
    expect((err as GenerationError & { ms: number }).ms).toBeLessThan(10_000);
  });

  it('fails a request that gets no answer at all within the timeout, closing its connection', async () => {
    server.answer({ type: 'hang', headers: false });
    const err = await failure(generator({ timeoutMs: 300 }));
    expect(err.message).toBe(
      `Template generation failed: the language model at ${server.url} sent nothing for 300 ms ` +
        'while writing the outreach email',
    );
    expect(err).toMatchObject({ code: 'MODEL_TIMEOUT', retryable: true });
    const ms = (err as GenerationError & { ms: number }).ms;
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1500);
    await server.requests[0]?.closed;
    expect(server.requests[0]?.closedByClient).toBe(true);
    expect(await requestCounts()).toEqual({ timeout: 1 });
  });

  it('fails an answer that goes quiet after its headers, or half-way, within the timeout', async () => {
    server.answer({ type: 'hang', headers: true });
    await expect(failure(generator({ timeoutMs: 300 }))).resolves.toMatchObject({
      code: 'MODEL_TIMEOUT',
    });
    server.answer(streamOf(EMAIL, { stallAfter: 2 }));
    const deltas: string[] = [];
    const err = await failure(generator({ timeoutMs: 300 }), { onText: (t) => deltas.push(t) });
    expect(err.code).toBe('MODEL_TIMEOUT');
    expect(EMAIL.startsWith(deltas.join(''))).toBe(true);
    await server.requests[1]?.closed;
    expect(server.requests[1]?.closedByClient).toBe(true);
  });

  it('asks again once after an empty answer, and then gives up', async () => {
    server.answer(streamOf(''), streamOf(EMAIL));
    const { text, written } = await write(generator());
    expect(text).toBe(EMAIL);
    expect(written.requests).toBe(2);

    server.answer(streamOf(''), streamOf('```\n\n```'));
    const err = await failure(generator());
    expect(err.message).toBe(
      `Template generation failed: the language model at ${server.url} sent an empty answer ` +
        'twice while writing the outreach email',
    );
    expect(err).toMatchObject({ code: 'MODEL_BAD_ANSWER', retryable: true });
    expect(await requestCounts()).toEqual({ malformed: 3, ok: 1 });
  });

  it('asks again once after a malformed chunk, and then gives up', async () => {
    server.answer(streamOf(EMAIL, { malformedAfter: 0 }), streamOf(EMAIL));
    const { text, written } = await write(generator());
    expect(text).toBe(EMAIL);
    expect(written.requests).toBe(2);

    server.answer(streamOf(EMAIL, { malformedAfter: 0 }), streamOf(EMAIL, { malformedAfter: 0 }));
    const err = await failure(generator());
    expect(err.code).toBe('MODEL_BAD_ANSWER');
    expect(err.message).toContain('sent an answer that could not be read twice');
  });

  it('continues an answer cut off mid-stream, without repeating or restarting it', async () => {
    const raw = `\`\`\`markdown\n${EMAIL}\n\`\`\``;
    const cut = 40;
    server.answer(
      streamOf(raw.slice(0, cut), { size: 10, disconnectAfter: 4 }),
      streamOf(raw.slice(cut), { size: 10 }),
    );
    const { text, written } = await write(generator());
    expect(text).toBe(EMAIL);
    expect(written.requests).toBe(2);

    const [first, second] = server.requests;
    const firstMessages = first?.body.messages ?? [];
    expect(second?.body.messages).toEqual([
      ...firstMessages,
      { role: 'assistant', content: raw.slice(0, cut) },
      { role: 'user', content: CONTINUE_PROMPT },
    ]);
    // The cut request's tokens were never reported; the continuation's are.
    expect(first?.usage).toBeUndefined();
    expect(written.usage).toEqual(second?.usage);
    expect(await requestCounts()).toEqual({ disconnected: 1, ok: 1 });
  });

  it('continues after a malformed chunk that came after some text', async () => {
    server.answer(
      streamOf(EMAIL.slice(0, 30), { size: 10, malformedAfter: 3 }),
      streamOf(EMAIL.slice(30)),
    );
    const { text } = await write(generator());
    expect(text).toBe(EMAIL);
    expect(server.requests[1]?.body.messages.at(-2)).toEqual({
      role: 'assistant',
      content: EMAIL.slice(0, 30),
    });
  });

  it('continues after the prefix that an earlier try published', async () => {
    const prefix = EMAIL.slice(0, 25);
    server.answer(streamOf(EMAIL.slice(25)));
    const { text } = await write(generator(), { prefix });
    expect(prefix + text).toBe(EMAIL);
    expect(server.requests[0]?.body.messages.slice(2)).toEqual([
      { role: 'assistant', content: prefix },
      { role: 'user', content: CONTINUE_PROMPT },
    ]);
  });

  it('retries a server it cannot reach, then says so', async () => {
    const port = await freePort();
    const err = await failure(
      generator({ baseUrl: `http://127.0.0.1:${port}/v1`, maxRetries: 2, backoffMs: 10 }),
      { kind: 'follow_up_email' },
    );
    expect(err.message).toBe(
      `Template generation failed: the language model at http://127.0.0.1:${port}/v1 ` +
        'could not be reached (ECONNREFUSED) 3 times while writing the follow-up email',
    );
    expect(err.retryable).toBe(true);
  });

  it('stops at once when aborted mid-answer: rejects with the reason and closes the connection', async () => {
    server.answer(streamOf(EMAIL, { size: 5, delayMs: 50 }));
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const deltas: string[] = [];
    let abortedAt = 0;
    const writing = generator().write({
      kind: 'outreach_email',
      position: 0,
      input: INPUT,
      prefix: '',
      signal: controller.signal,
      onText: (text) => {
        deltas.push(text);
        if (deltas.length === 3) {
          abortedAt = performance.now();
          controller.abort(reason);
        }
      },
    });
    await expect(writing).rejects.toBe(reason);
    expect(performance.now() - abortedAt).toBeLessThan(200);
    await server.requests[0]?.closed;
    expect(server.requests[0]?.closedByClient).toBe(true);
    expect(deltas).toHaveLength(3);
    expect(await requestCounts()).toEqual({ aborted: 1 });
  });

  it('stops at once when aborted before the answer starts, or while waiting to retry', async () => {
    server.answer({ type: 'hang', headers: false });
    const controller = new AbortController();
    const writing = write(generator(), { signal: controller.signal });
    await server.waitForRequests(1);
    controller.abort();
    await expect(writing).rejects.toMatchObject({ name: 'AbortError' });
    await server.requests[0]?.closed;
    expect(server.requests[0]?.closedByClient).toBe(true);

    server.answer(statusAnswer(429, 'slow down', { 'retry-after': '5' }));
    const second = new AbortController();
    const started = performance.now();
    const waiting = write(generator(), { signal: second.signal });
    const [, rateLimited] = await server.waitForRequests(2);
    await rateLimited?.closed;
    second.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(server.requests).toHaveLength(2);
  });

  it('sends the API key as a Bearer token and names it in no error', async () => {
    const apiKey = 'sk-test-0123456789SECRET';
    server.answer(
      statusAnswer(401, `Incorrect API key provided: ${apiKey}. You can find your key online.`),
    );
    const err = await failure(generator({ apiKey }));
    expect(server.requests[0]?.headers.authorization).toBe(`Bearer ${apiKey}`);
    expect(err.message).toContain('answered 401 (Incorrect API key provided: ');
    expect(err.message).toContain('check OPENAI_API_KEY');
    expect(err.message).not.toContain('SECRET');
    expect(err.stack ?? '').not.toContain('SECRET');
    expect(err).toMatchObject({ code: 'MODEL_REJECTED', retryable: false });
    expect(server.requests).toHaveLength(1);
  });

  it('sends no Authorization header without a key', async () => {
    server.answer(streamOf(EMAIL));
    await write(generator());
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
  });

  it('does not retry an unknown model or a bad request, and says what to check', async () => {
    server.answer({
      type: 'status',
      status: 404,
      body: { error: { message: "model 'llama9' not found", type: 'not_found_error' } },
    });
    const notFound = await failure(generator({ model: 'llama9' }), { kind: 'landing_page_hero' });
    expect(notFound.message).toBe(
      `Template generation failed: the language model at ${server.url} answered 404 ` +
        "(model 'llama9' not found) while writing the landing page hero; " +
        'check OPENAI_MODEL and OPENAI_BASE_URL',
    );
    expect(notFound.retryable).toBe(false);

    server.answer(statusAnswer(400, "'max_tokens' is too large"));
    const badRequest = await failure(generator());
    expect(badRequest).toMatchObject({ code: 'MODEL_REJECTED', retryable: false });
    expect(badRequest.message).toContain("answered 400 ('max_tokens' is too large)");
    expect(server.requests).toHaveLength(2);
    expect(await requestCounts()).toEqual({ client_error: 2 });
  });

  it('does not retry a 429 that means the quota is spent', async () => {
    server.answer({
      type: 'status',
      status: 429,
      body: { error: { message: 'You exceeded your current quota', code: 'insufficient_quota' } },
    });
    const err = await failure(generator());
    expect(err.retryable).toBe(false);
    expect(server.requests).toHaveLength(1);
  });

  it('counts requests by outcome, their duration and the tokens reported', async () => {
    server.answer(
      statusAnswer(500, 'oops'),
      streamOf(EMAIL, { usage: { prompt_tokens: 120, completion_tokens: 80 } }),
    );
    const { written } = await write(generator());
    expect(written.usage).toEqual({ prompt_tokens: 120, completion_tokens: 80 });
    const tokens = await metrics.llmTokens.get();
    expect(Object.fromEntries(tokens.values.map((v) => [v.labels.kind, v.value]))).toEqual({
      prompt: 120,
      completion: 80,
    });
    const text = await registry.metrics();
    expect(text).toContain('triton_llm_requests_total{outcome="server_error"} 1');
    expect(text).toContain('triton_llm_request_duration_seconds_count{outcome="ok"} 1');
  });
});

describe('createTemplateGenerator', () => {
  const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });

  it('makes the built-in generator by default, typing over GENERATION_STEP_MS', () => {
    const gen = createTemplateGenerator(loadConfig({}).triton, { logger });
    expect(gen.name).toBe('builtin');
  });

  it('makes an OpenAI-compatible generator from GENERATOR=openai and OPENAI_*', async () => {
    const config = loadConfig({
      GENERATOR: 'openai',
      OPENAI_BASE_URL: `${server.url}/`,
      OPENAI_MODEL: 'llama3.1',
      OPENAI_API_KEY: 'local-key',
      OPENAI_MAX_TOKENS: '300',
    });
    const gen = createTemplateGenerator(config.triton, { logger, metrics });
    expect(gen.name).toBe('openai:llama3.1');
    server.answer(streamOf(EMAIL));
    expect((await write(gen)).text).toBe(EMAIL);
    expect(server.requests[0]?.headers.authorization).toBe('Bearer local-key');
    expect(server.requests[0]?.body).toMatchObject({ model: 'llama3.1', max_tokens: 300 });
  });
});
