import type { z } from 'zod';
import {
  AppError,
  Client,
  ClientList,
  ErrorBody,
  JobAccepted,
  JobStatusDocument,
  TemplateList,
  ValueProposition,
  type CreateClientBody,
  type CreateValuePropositionBody,
} from '../contract/index.js';

export interface TritonClientOptions {
  /** triton-api's base URL, without a trailing slash. */
  baseUrl: string;
  /** Per-request deadline. @defaultValue 5000 */
  timeoutMs?: number;
  /** Seconds clients are told to wait when triton-api is unreachable. @defaultValue 5 */
  retryAfterSeconds?: number;
}

/**
 * triton-api over HTTP, with a deadline on every request and its failures turned into stable
 * codes: unreachable → `UPSTREAM_UNAVAILABLE` (503), too slow → `UPSTREAM_TIMEOUT` (504), a
 * 5xx or an answer that breaks the contract → `UPSTREAM_ERROR` (502); its own 4xx errors
 * (`JOB_NOT_FOUND`…) pass through unchanged.
 */
export class TritonClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly retryAfterSeconds: number;

  constructor({ baseUrl, timeoutMs = 5000, retryAfterSeconds = 5 }: TritonClientOptions) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /**
   * Submits a job. `forwardedFor` is the end user's address, passed on as X-Forwarded-For so
   * that triton-api's submission limit counts per user rather than per gateway.
   */
  submitGeneration(clientId: string, forwardedFor?: string): Promise<JobAccepted> {
    return this.request('POST', `/clients/${clientId}/generate-templates`, JobAccepted, undefined, {
      ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}),
    });
  }

  getJob(jobId: string): Promise<JobStatusDocument> {
    return this.request('GET', `/jobs/${jobId}`, JobStatusDocument);
  }

  /** Cancels a job: 202 with its status document; `JOB_FINISHED` (409) once it ended. */
  cancelJob(jobId: string): Promise<JobStatusDocument> {
    return this.request('POST', `/jobs/${jobId}/cancel`, JobStatusDocument);
  }

  listJobTemplates(jobId: string): Promise<TemplateList> {
    return this.request('GET', `/jobs/${jobId}/templates`, TemplateList);
  }

  listClients(page: { limit: number; offset: number }): Promise<ClientList> {
    return this.request('GET', `/clients/?limit=${page.limit}&offset=${page.offset}`, ClientList);
  }

  createClient(body: CreateClientBody): Promise<Client> {
    return this.request('POST', '/clients/', Client, body);
  }

  createValueProposition(
    clientId: string,
    body: CreateValuePropositionBody,
  ): Promise<ValueProposition> {
    return this.request('POST', `/clients/${clientId}/value-propositions`, ValueProposition, body);
  }

  /** Resolves when triton-api answers its liveness check. */
  async ping(): Promise<void> {
    await this.fetch('GET', '/health');
  }

  private async fetch(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
        throw new AppError(
          'UPSTREAM_TIMEOUT',
          `triton-api did not answer within ${this.timeoutMs} ms`,
          this.retryAfterSeconds,
        );
      }
      throw new AppError(
        'UPSTREAM_UNAVAILABLE',
        'triton-api is unreachable',
        this.retryAfterSeconds,
      );
    }
  }

  private async request<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<z.output<S>> {
    const response = await this.fetch(method, path, body, headers);
    let payload: unknown;
    try {
      payload = await response.json();
    } catch {
      payload = undefined;
    }
    if (response.ok) {
      const parsed = schema.safeParse(payload);
      if (parsed.success) return parsed.data;
      throw new AppError(
        'UPSTREAM_ERROR',
        `triton-api answered ${method} ${path} with an unexpected body`,
      );
    }
    const error = ErrorBody.safeParse(payload);
    if (response.status === 503) {
      throw new AppError(
        'UPSTREAM_UNAVAILABLE',
        'triton-api is unavailable',
        this.retryAfterSeconds,
      );
    }
    if (response.status >= 400 && response.status < 500 && error.success) {
      // A 429 from triton-api's own rate limit says when to come back: pass that on too.
      const retryAfter = Number(response.headers.get('retry-after'));
      throw new AppError(
        error.data.error.code,
        error.data.error.message,
        Number.isSafeInteger(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
      );
    }
    throw new AppError(
      'UPSTREAM_ERROR',
      `triton-api answered ${method} ${path} with status ${response.status}`,
    );
  }
}
