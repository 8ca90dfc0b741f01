import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import { TEMPLATE_KINDS, type TemplateKind } from '../../contract/index.js';
import type { Logger } from '../../common/logger.js';
import type { LlmRequestOutcome, TritonMetrics } from '../triton-metrics.js';
import { abortableSleep } from './abortable-sleep.js';
import { GenerationError } from './generation-error.js';
import { CONTINUE_PROMPT, SYSTEM_PROMPT, TEMPLATE_BRIEFS } from './template-briefs.js';
import {
  templateTitle,
  type GenerationInput,
  type TemplateGenerator,
  type WriteTemplateRequest,
  type WrittenTemplate,
} from './template-generator.js';
import { TemplateTextCleaner } from './template-text-cleaner.js';

/** Which model writes the templates, where it is served, and how patiently it is asked. */
export interface OpenAiTemplateGeneratorOptions {
  /** Base URL of an OpenAI-compatible API, e.g. `http://localhost:11434/v1` (Ollama). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …`; without one, no Authorization header is sent. */
  apiKey?: string | undefined;
  /** The model's name, as the server knows it (`OPENAI_MODEL`). */
  model: string;
  /** Longest wait for the first byte of an answer, and between two of its pieces. @defaultValue 60_000 */
  timeoutMs?: number;
  /** Sampling temperature. @defaultValue the server's */
  temperature?: number | undefined;
  /** Most tokens per template. @defaultValue the server's */
  maxTokens?: number | undefined;
  /** Retries per template of a request answered 429 or 5xx, unreachable or cut off. @defaultValue 3 */
  maxRetries?: number;
  /** Wait before the first retry without Retry-After; doubled for each next one. @defaultValue 500 */
  backoffMs?: number;
  /** Longest wait before a retry, whatever Retry-After asks. @defaultValue 10_000 */
  maxRetryWaitMs?: number;
  metrics?: TritonMetrics | undefined;
  logger?: Logger | undefined;
}

/** A request that failed in a way another request may not: what to say about it. */
type Failure =
  | { kind: 'status'; status: number }
  | { kind: 'unreachable'; code: string }
  | { kind: 'cut-off' }
  | { kind: 'stream-error'; message: string };

/** How one request went. */
interface Attempt {
  outcome: LlmRequestOutcome;
  ms: number;
  usage: { prompt_tokens: number; completion_tokens: number };
  failure?: Failure;
  /** For a 429 or 5xx: how long the server asked to wait. */
  retryAfterMs?: number;
  /** For answers no retry can fix: status, and the server's own words. */
  rejection?: { status: number; message: string; quota: boolean };
  /** What could not be read, for malformed answers. */
  unreadable?: string;
  finishReason?: string;
}

/** Statuses that another try may get past: timeouts on the server side, conflicts, load. */
const RETRYABLE_STATUS = (status: number) =>
  status === 408 || status === 409 || status === 429 || status >= 500;

/**
 * Writes templates with a language model behind an OpenAI-compatible chat-completions API
 * (OpenAI, Ollama, vLLM, llama.cpp…): one streamed request per template, its text passed on
 * as it arrives, cleaned of the wrapping models add (code fences, blank space at the ends).
 *
 * Failures are handled here, not by the client library, so that Retry-After, counting and
 * messages are ours: 429 and 5xx answers and lost connections are retried with backoff (up to
 * `maxRetries`), an empty or unreadable answer once; an answer cut off after some text is
 * continued by a follow-up request that shows the model its partial text, so nothing already
 * passed on is written or paid for twice. A request that sends nothing for `timeoutMs` ends the
 * write at once. Errors are {@link GenerationError}s naming the server (without credentials)
 * and the template, never the key.
 */
export class OpenAiTemplateGenerator implements TemplateGenerator {
  readonly kinds = TEMPLATE_KINDS;
  readonly name: string;
  private readonly client: OpenAI;
  private readonly model: string;
  private readonly where: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly temperature: number | undefined;
  private readonly maxTokens: number | undefined;
  private readonly maxRetries: number;
  private readonly backoffMs: number;
  private readonly maxRetryWaitMs: number;
  private readonly metrics: TritonMetrics | undefined;
  private readonly logger: Logger | undefined;

  constructor({
    baseUrl,
    apiKey,
    model,
    timeoutMs = 60_000,
    temperature,
    maxTokens,
    maxRetries = 3,
    backoffMs = 500,
    maxRetryWaitMs = 10_000,
    metrics,
    logger,
  }: OpenAiTemplateGeneratorOptions) {
    this.name = `openai:${model}`;
    this.model = model;
    this.where = publicUrl(baseUrl);
    this.apiKey = apiKey || undefined;
    this.timeoutMs = timeoutMs;
    this.temperature = temperature;
    this.maxTokens = maxTokens;
    this.maxRetries = maxRetries;
    this.backoffMs = backoffMs;
    this.maxRetryWaitMs = maxRetryWaitMs;
    this.metrics = metrics;
    this.logger = logger?.child({ generator: this.name });
    this.client = new OpenAI({
      baseURL: baseUrl,
      // The client insists on a key; a local server needs none, so send no header at all.
      apiKey: this.apiKey ?? 'none',
      ...(this.apiKey ? {} : { defaultHeaders: { Authorization: null } }),
      // Given explicitly, so the client reads none of these from the environment.
      adminAPIKey: null,
      organization: null,
      project: null,
      webhookSecret: null,
      logLevel: 'off',
      maxRetries: 0,
      timeout: timeoutMs,
    });
  }

  async write(request: WriteTemplateRequest): Promise<WrittenTemplate> {
    const { kind, input, prefix, signal } = request;
    signal.throwIfAborted();
    const what = TEMPLATE_BRIEFS[kind].name;
    const usage = { prompt_tokens: 0, completion_tokens: 0 };
    let requests = 0;
    let modelMs = 0;
    const failures: Failure[] = [];
    let badAnswers = 0;

    const fresh = () => new TemplateTextCleaner({ resume: prefix !== '' });
    let cleaner = fresh();
    /** The answer so far, as the model is shown it when asked to continue. */
    let written = prefix;
    /** Whether this write has passed any text on: from then on, it continues, never restarts. */
    let emitted = false;
    const emit = (text: string) => {
      if (text === '' || signal.aborted) return;
      emitted = true;
      request.onText(text);
    };

    for (;;) {
      requests += 1;
      const attempt = await this.request(this.messages(kind, input, written), signal, (text) => {
        written += text;
        emit(cleaner.push(text));
      });
      modelMs += attempt.ms;
      usage.prompt_tokens += attempt.usage.prompt_tokens;
      usage.completion_tokens += attempt.usage.completion_tokens;

      let rest = '';
      if (attempt.outcome === 'ok') {
        rest = cleaner.end();
        if (!emitted && rest === '' && prefix === '') {
          attempt.outcome = 'malformed';
          attempt.unreadable = 'an empty answer';
        }
      }
      this.metrics?.observeLlmRequest(attempt.outcome, attempt.ms / 1000);
      this.metrics?.countLlmTokens(attempt.usage);

      switch (attempt.outcome) {
        case 'ok':
          emit(rest);
          if (attempt.finishReason === 'length') {
            this.logger?.warn(
              { kind },
              `The ${what} stopped at the token limit (OPENAI_MAX_TOKENS)`,
            );
          }
          return {
            title: templateTitle(kind, input),
            usage,
            requests,
            model_ms: Math.round(modelMs),
          };

        case 'aborted':
          // The signal's reason, as throwIfAborted() would throw it.
          throw signal.reason;

        case 'timeout':
          throw this.error(
            `sent nothing for ${seconds(this.timeoutMs)} while writing the ${what}`,
            'MODEL_TIMEOUT',
            true,
          );

        case 'client_error': {
          const { status, message, quota } = attempt.rejection ?? {
            status: 0,
            message: '',
            quota: false,
          };
          const hint = quota
            ? "; check the account's plan and billing"
            : status === 401 || status === 403
              ? '; check OPENAI_API_KEY'
              : status === 404
                ? '; check OPENAI_MODEL and OPENAI_BASE_URL'
                : '';
          throw this.error(
            `answered ${status}${message ? ` (${message})` : ''} while writing the ${what}${hint}`,
            'MODEL_REJECTED',
            false,
          );
        }

        case 'malformed':
          badAnswers += 1;
          if (badAnswers > 1) {
            throw this.error(
              `sent ${attempt.unreadable ?? 'an answer that could not be read'} twice while writing the ${what}`,
              'MODEL_BAD_ANSWER',
              true,
            );
          }
          this.logger?.warn(
            { kind, request: requests },
            `Unreadable answer for the ${what}; asking again`,
          );
          break;

        default: {
          // rate_limited, server_error, disconnected: worth another request after a pause.
          failures.push(attempt.failure ?? { kind: 'cut-off' });
          if (failures.length > this.maxRetries) {
            throw this.error(
              `${describe(failures)} while writing the ${what}`,
              'MODEL_UNAVAILABLE',
              true,
            );
          }
          const waitMs = Math.min(
            this.maxRetryWaitMs,
            attempt.retryAfterMs ?? jitter(this.backoffMs * 2 ** (failures.length - 1)),
          );
          this.logger?.warn(
            { kind, request: requests, outcome: attempt.outcome, wait_ms: Math.round(waitMs) },
            `Language model ${this.redact(describe(failures.slice(-1)))} while writing the ${what}; ` +
              `retrying in ${Math.round(waitMs)} ms`,
          );
          await abortableSleep(waitMs, signal);
        }
      }

      if (!emitted) {
        // Nothing was passed on: ask afresh, rather than show the model a half-opened fence.
        cleaner = fresh();
        written = prefix;
      }
    }
  }

  /** The conversation for one request: the brief, and the answer so far when continuing one. */
  private messages(
    kind: TemplateKind,
    input: GenerationInput,
    written: string,
  ): ChatCompletionMessageParam[] {
    const messages: ChatCompletionMessageParam[] = [
      { role: 'system', content: SYSTEM_PROMPT },
      {
        role: 'user',
        content: [
          `Client: ${input.clientName}`,
          `Industry: ${input.industry}`,
          `Value proposition: ${input.valueProposition}`,
          '',
          `Write ${TEMPLATE_BRIEFS[kind].brief}`,
        ].join('\n'),
      },
    ];
    if (written !== '') {
      messages.push(
        { role: 'assistant', content: written },
        { role: 'user', content: CONTINUE_PROMPT },
      );
    }
    return messages;
  }

  /**
   * Sends one streamed request, passing each piece of text to `onText` as it arrives, and says
   * how it went. Rejects only with what `onText` throws.
   */
  private async request(
    messages: ChatCompletionMessageParam[],
    signal: AbortSignal,
    onText: (text: string) => void,
  ): Promise<Attempt> {
    const started = performance.now();
    const usage = { prompt_tokens: 0, completion_tokens: 0 };
    const result = (outcome: LlmRequestOutcome, more: Partial<Attempt> = {}): Attempt => ({
      outcome,
      ms: performance.now() - started,
      usage,
      ...more,
    });

    // The client's own timeout stops at the response headers; this one also covers an answer
    // that goes quiet half-way. Both end the request by aborting it, so its connection closes.
    const controller = new AbortController();
    let timedOut = false;
    const watchdog = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    const onAbort = () => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });

    let answering = false;
    let finishReason: string | undefined;
    let thrown: { error: unknown } | undefined;
    try {
      const stream = await this.client.chat.completions.create(
        {
          model: this.model,
          messages,
          stream: true,
          stream_options: { include_usage: true },
          ...(this.temperature === undefined ? {} : { temperature: this.temperature }),
          ...(this.maxTokens === undefined ? {} : { max_tokens: this.maxTokens }),
        },
        { signal: controller.signal, timeout: this.timeoutMs, maxRetries: 0 },
      );
      answering = true;
      watchdog.refresh();
      reading: for await (const chunk of stream) {
        watchdog.refresh();
        if (!isChunk(chunk)) {
          return result('malformed', { unreadable: 'an answer that could not be read' });
        }
        if (chunk.usage) {
          usage.prompt_tokens = chunk.usage.prompt_tokens;
          usage.completion_tokens = chunk.usage.completion_tokens;
        }
        for (const choice of chunk.choices) {
          if (choice.index !== 0) continue;
          const text = choice.delta?.content;
          if (typeof text === 'string' && text !== '') {
            try {
              onText(text);
            } catch (error) {
              thrown = { error };
              break reading;
            }
          }
          if (choice.finish_reason) finishReason = choice.finish_reason;
        }
      }
      if (thrown) throw thrown.error;
      // The client ends the stream quietly when it is aborted: say why it ended.
      if (signal.aborted) return result('aborted');
      if (timedOut) return result('timeout');
      // Without a finish reason the answer stopped short, though the connection closed cleanly.
      if (finishReason === undefined)
        return result('disconnected', { failure: { kind: 'cut-off' } });
      return result('ok', { finishReason });
    } catch (err) {
      if (thrown) throw thrown.error;
      if (signal.aborted) return result('aborted');
      if (timedOut || err instanceof APIConnectionTimeoutError) return result('timeout');
      if (err instanceof SyntaxError) {
        return result('malformed', { unreadable: 'an answer that could not be read' });
      }
      if (err instanceof APIError && !(err instanceof APIUserAbortError)) {
        const apiError = err as APIError;
        if (apiError.status !== undefined)
          return this.statusAttempt(apiError, apiError.status, result);
        if (!(err instanceof APIConnectionError)) {
          // An error event in the middle of the stream (vLLM and Ollama send these).
          return result('server_error', {
            failure: { kind: 'stream-error', message: this.serverMessage(apiError) },
          });
        }
      }
      if (answering) return result('disconnected', { failure: { kind: 'cut-off' } });
      return result('disconnected', {
        failure: { kind: 'unreachable', code: connectionCode(err) },
      });
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private statusAttempt(
    err: APIError,
    status: number,
    result: (outcome: LlmRequestOutcome, more?: Partial<Attempt>) => Attempt,
  ): Attempt {
    const quota = status === 429 && err.code === 'insufficient_quota';
    if (!RETRYABLE_STATUS(status) || quota) {
      return result('client_error', {
        rejection: { status, message: this.serverMessage(err), quota },
      });
    }
    const retryAfterMs = retryAfter(err.headers);
    return result(status === 429 ? 'rate_limited' : 'server_error', {
      failure: { kind: 'status', status },
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }

  /** The server's own explanation, on one short line, without the key. */
  private serverMessage(err: APIError): string {
    const body: { message?: unknown } | undefined = err.error;
    const raw = typeof body?.message === 'string' ? body.message : err.message;
    const line = this.redact(
      raw
        .replace(/^\d{3}\s+/, '')
        .replace(/\s+/g, ' ')
        .trim(),
    );
    return line.length > 200 ? `${line.slice(0, 199)}…` : line;
  }

  private redact(text: string): string {
    let out = text.replace(/\bsk-[A-Za-z0-9_*-]{3,}/g, 'sk-***');
    if (this.apiKey) out = out.split(this.apiKey).join('***');
    return out;
  }

  private error(what: string, code: GenerationError['code'], retryable: boolean): GenerationError {
    return new GenerationError(
      this.redact(`Template generation failed: the language model at ${this.where} ${what}`),
      code,
      retryable,
    );
  }
}

function isChunk(value: unknown): value is ChatCompletionChunk {
  if (typeof value !== 'object' || value === null) return false;
  const chunk = value as { choices?: unknown; usage?: unknown };
  return Array.isArray(chunk.choices) || (typeof chunk.usage === 'object' && chunk.usage !== null);
}

/** The base URL as it may be shown: no user, password, query or fragment. */
function publicUrl(baseUrl: string): string {
  try {
    const url = new URL(baseUrl);
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    return url.toString().replace(/\/+$/, '');
  } catch {
    return '(invalid URL)';
  }
}

/** How long the server asked to wait (`retry-after-ms`, or `Retry-After` in seconds or as a date). */
export function retryAfter(headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = Number(headers?.get('retry-after-ms') ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** ±20%, so that workers that failed together do not all come back together. */
function jitter(ms: number): number {
  return ms * (0.8 + Math.random() * 0.4);
}

function connectionCode(err: unknown): string {
  let cause: unknown = err;
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cause = cause.cause;
  }
  return 'no connection';
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

const times = (n: number) => (n === 1 ? 'once' : n === 2 ? 'twice' : `${n} times`);

/** "answered 503 4 times", "could not be reached (ECONNREFUSED) twice", "failed 3 times (…)". */
function describe(failures: Failure[]): string {
  const label = (f: Failure) =>
    f.kind === 'status'
      ? String(f.status)
      : f.kind === 'unreachable'
        ? `unreachable (${f.code})`
        : f.kind === 'cut-off'
          ? 'answer cut off'
          : `error in the answer (${f.message})`;
  const labels = failures.map(label);
  const first = failures[0];
  const n = failures.length;
  if (first && labels.every((l) => l === labels[0])) {
    if (first.kind === 'status') return `answered ${first.status} ${times(n)}`;
    if (first.kind === 'unreachable') return `could not be reached (${first.code}) ${times(n)}`;
    if (first.kind === 'cut-off') return `broke off its answer ${times(n)}`;
  }
  return `failed ${times(n)} (${labels.join(', ')})`;
}
