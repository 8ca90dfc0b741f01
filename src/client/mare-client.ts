import {
  Client,
  ClientList,
  JobAccepted,
  JobStatusDocument,
  STREAM_TOKEN_PARAM,
  StreamTokenGrant,
  TemplateList,
  ValueProposition,
  type CreateClientBody,
  type CreateValuePropositionBody,
  type Template,
} from '../contract/index.js';
import { AllJobsWatch, type AllJobsWatchOptions } from './all-jobs-watch.js';
import { JobWatch, type JobWatchHttp, type JobWatchOptions } from './job-watch.js';
import { MareApiError } from './mare-api-error.js';

/** The subset of `fetch` the client uses, so tests and unusual runtimes can supply their own. */
export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

/**
 * Where a watch gets the stream token it opens its stream with (`?token=`): called for its first
 * connection, and again whenever mare-api refuses the token in use (it expired), at once, so
 * that the reconnection goes on with a fresh one. `jobId` is the job of a job's stream,
 * undefined for the all-jobs stream. A page without a key asks its own backend, which has one
 * ({@link MareClient.createStreamToken}).
 */
export type StreamTokenSource = (stream: { jobId: string | undefined }) => string | Promise<string>;

/** Options of {@link MareClient}. */
export interface MareClientOptions {
  /**
   * mare-api's base URL.
   * @defaultValue the page's origin in a browser, `http://127.0.0.1:16000` elsewhere
   */
  baseUrl?: string;
  /** @defaultValue the global `fetch` */
  fetch?: FetchFunction;
  /** Deadline of each ordinary request (not of streams). @defaultValue 10000 */
  timeoutMs?: number;
  /** Headers sent with every request (an `authorization` header behind a gateway, say). */
  headers?: Record<string, string>;
  /**
   * An API key (mare-api with auth on), sent as `Authorization: Bearer` with every request,
   * streams included: a key does not expire, so a watch reconnects with it however long it runs.
   */
  apiKey?: string;
  /**
   * Stream tokens for the watches' streams instead (or without) a key: a page given a token by
   * its backend, say. A watch's own `streamToken` option comes first.
   */
  streamToken?: StreamTokenSource;
}

/** Options of a single request. */
export interface RequestOptions {
  /** Aborts the request; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Where mare-api is when nobody says: the page's own origin in a browser. */
function defaultBaseUrl(): string {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  return origin && origin !== 'null' ? origin : 'http://127.0.0.1:16000';
}

/** The stream tokens of one watch: the one in use, and what to do when it is refused. */
interface StreamTokens {
  current(): Promise<string>;
  /** Drops the token in use; true when another can be had. */
  refused(): boolean;
}

interface Parser<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false };
}

/**
 * A typed client for mare-api, for browsers and Node 20 alike (global `fetch`, `TextDecoder`,
 * web streams; no `EventSource`, so that resuming, deduplication and fallback are ours).
 *
 * Every method resolves with the contract's types, validated, or rejects with a
 * {@link MareApiError} carrying the server's `{error: {code, message}}` and HTTP status.
 *
 * @example
 * ```ts
 * const mare = new MareClient({ baseUrl: 'http://127.0.0.1:16000' });
 * const { job_id } = await mare.generateTemplates(clientId);
 * for await (const event of mare.watchJob(job_id)) console.log(event.event_type, event.status);
 * ```
 */
export class MareClient {
  /** mare-api's base URL, without a trailing slash. */
  readonly baseUrl: string;
  private readonly fetchFn: FetchFunction;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly streamToken: StreamTokenSource | undefined;

  constructor({
    baseUrl = defaultBaseUrl(),
    // Called through a wrapper: a browser's fetch throws "Illegal invocation" when called as
    // a method of another object.
    fetch: fetchFn = (input, init) => fetch(input, init),
    timeoutMs = 10_000,
    headers = {},
    apiKey,
    streamToken,
  }: MareClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.fetchFn = fetchFn;
    this.timeoutMs = timeoutMs;
    this.headers =
      apiKey === undefined ? headers : { ...headers, authorization: `Bearer ${apiKey}` };
    this.streamToken = streamToken;
  }

  /** Submits a template-generation job for a client; watch it with {@link MareClient.watchJob}. */
  generateTemplates(clientId: string, options: RequestOptions = {}): Promise<JobAccepted> {
    return this.request(
      'POST',
      `/v1/triton/clients/${encodeURIComponent(clientId)}/generate-templates`,
      JobAccepted,
      options,
    );
  }

  /** A job's status document: from mare-api's cache once it has finished. */
  getJob(jobId: string, options: RequestOptions = {}): Promise<JobStatusDocument> {
    return this.request(
      'GET',
      `/v1/triton/jobs/${encodeURIComponent(jobId)}`,
      JobStatusDocument,
      options,
    );
  }

  /**
   * Cancels a job: a queued one never starts, a running one stops within a second and keeps the
   * templates it stored. Answers the job's status document; a finished job is a
   * {@link MareApiError} with code `JOB_FINISHED` (409).
   */
  cancelJob(jobId: string, options: RequestOptions = {}): Promise<JobStatusDocument> {
    return this.request(
      'POST',
      `/v1/triton/jobs/${encodeURIComponent(jobId)}/cancel`,
      JobStatusDocument,
      options,
    );
  }

  /** A job's templates, in order (those finished so far while it runs). */
  async getJobTemplates(jobId: string, options: RequestOptions = {}): Promise<Template[]> {
    const list = await this.request(
      'GET',
      `/v1/triton/jobs/${encodeURIComponent(jobId)}/templates`,
      TemplateList,
      options,
    );
    return list.templates;
  }

  /**
   * A stream token (mare-api with auth on, and a key): for one job's stream, or, without
   * `jobId`, for the all-jobs stream of this key's tenant. Hand it to a page that has no key;
   * it opens streams until `expires_at`.
   */
  createStreamToken(jobId?: string, options: RequestOptions = {}): Promise<StreamTokenGrant> {
    return this.request(
      'POST',
      '/v1/triton/stream-tokens',
      StreamTokenGrant,
      options,
      jobId === undefined ? {} : { job_id: jobId },
    );
  }

  /** Clients, newest first. @param page - `limit` (default 100) and `offset` (default 0). */
  async listClients({
    limit = 100,
    offset = 0,
    ...options
  }: RequestOptions & { limit?: number; offset?: number } = {}): Promise<Client[]> {
    const list = await this.request(
      'GET',
      `/v1/triton/clients?limit=${limit}&offset=${offset}`,
      ClientList,
      options,
    );
    return list.clients;
  }

  /** Creates a client (`name`, `industry`). */
  createClient(body: CreateClientBody, options: RequestOptions = {}): Promise<Client> {
    return this.request('POST', '/v1/triton/clients', Client, options, body);
  }

  /**
   * Adds a value proposition to a client; an active one (the default) replaces the client's
   * previous active one. A job needs one to succeed.
   */
  createValueProposition(
    clientId: string,
    body: CreateValuePropositionBody,
    options: RequestOptions = {},
  ): Promise<ValueProposition> {
    return this.request(
      'POST',
      `/v1/triton/clients/${encodeURIComponent(clientId)}/value-propositions`,
      ValueProposition,
      options,
      body,
    );
  }

  /**
   * Follows one job to its end over SSE (resuming, deduplicating, falling back to polling):
   * iterate it with `for await`, pass callbacks, or await its `done`. See {@link JobWatch}.
   */
  watchJob(jobId: string, options: JobWatchOptions = {}): JobWatch {
    const tokens = this.tokensFor(options.streamToken, jobId);
    const http: JobWatchHttp = {
      openStream: (path, signal) => this.openStream(path, signal, tokens),
      getJob: (id, signal) => this.getJob(id, { signal }),
    };
    return new JobWatch(jobId, http, options);
  }

  /** Follows every job's events until closed. See {@link AllJobsWatch}. */
  watchAll(options: AllJobsWatchOptions = {}): AllJobsWatch {
    const tokens = this.tokensFor(options.streamToken, undefined);
    return new AllJobsWatch(
      { openStream: (path, signal) => this.openStream(path, signal, tokens) },
      options,
    );
  }

  /**
   * A watch's stream tokens: its own token (a string) or source, else the client's source; the
   * token in use is kept for reconnections until refused. Undefined: the watch's stream goes
   * without one (a key, or auth off).
   */
  private tokensFor(
    own: string | StreamTokenSource | undefined,
    jobId: string | undefined,
  ): StreamTokens | undefined {
    const source = typeof own === 'function' ? own : this.streamToken;
    if (own === undefined && !source) return undefined;
    let current = typeof own === 'string' ? own : undefined;
    return {
      current: async () => (current ??= await (source ?? (() => own as string))({ jobId })),
      refused: () => {
        current = undefined;
        return source !== undefined;
      },
    };
  }

  /**
   * An SSE request: no deadline (it is meant to stay open), only the caller's signal. With
   * stream tokens, a token refused (401: it expired) is replaced at once, once.
   */
  private async openStream(
    path: string,
    signal: AbortSignal,
    tokens?: StreamTokens,
  ): Promise<Response> {
    const open = async () => {
      let url = `${this.baseUrl}${path}`;
      let headers: Record<string, string> = { ...this.headers, accept: 'text/event-stream' };
      if (tokens) {
        const token = await tokens.current();
        url += `${path.includes('?') ? '&' : '?'}${STREAM_TOKEN_PARAM}=${encodeURIComponent(token)}`;
        // The token says who asks: no header, so a cross-origin browser needs no preflight.
        const { authorization: _key, ...rest } = headers;
        headers = rest;
      }
      return this.send(url, { method: 'GET', headers, signal });
    };
    const response = await open();
    if (response.status !== 401 || !tokens?.refused()) return response;
    await response.body?.cancel().catch(() => undefined);
    return open();
  }

  private async request<T>(
    method: 'GET' | 'POST',
    path: string,
    schema: Parser<T>,
    { signal }: RequestOptions,
    body?: unknown,
  ): Promise<T> {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const response = await this.send(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...this.headers,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? null : JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
    });
    if (!response.ok) throw await MareApiError.fromResponse(response);
    let json: unknown;
    try {
      json = await response.json();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (deadline.aborted) {
        throw new MareApiError(
          'NETWORK_ERROR',
          `mare-api did not answer within ${this.timeoutMs} ms`,
          0,
        );
      }
      throw new MareApiError(
        'BAD_RESPONSE',
        `${method} ${path} answered ${response.status} without a JSON body`,
        response.status,
        undefined,
        { cause: err },
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new MareApiError(
        'BAD_RESPONSE',
        `${method} ${path} answered a body that does not match the contract`,
        response.status,
      );
    }
    return parsed.data;
  }

  /**
   * fetch, with its failures as {@link MareApiError}s (`NETWORK_ERROR`, status 0). The caller's
   * own abort is passed on as is, so that `AbortError` still means "you cancelled this".
   */
  private async send(url: string, init: RequestInit & { signal: AbortSignal }): Promise<Response> {
    try {
      return await this.fetchFn(url, init);
    } catch (err) {
      const timedOut = err instanceof DOMException && err.name === 'TimeoutError';
      if (init.signal.aborted && !timedOut) throw err;
      throw new MareApiError(
        'NETWORK_ERROR',
        timedOut
          ? `mare-api did not answer within ${this.timeoutMs} ms`
          : `mare-api could not be reached at ${this.baseUrl}: ${(err as Error).message}`,
        0,
        undefined,
        { cause: err },
      );
    }
  }
}
