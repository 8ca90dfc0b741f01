import type { z } from 'zod';
import { gatewayHeaders } from '../common/client-address.js';
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

/** Where triton-api is, and how long to wait for it. */
export interface TritonClientOptions {
  /** triton-api's base URL, without a trailing slash. */
  baseUrl: string;
  /** Per-request deadline. @defaultValue 5000 */
  timeoutMs?: number;
  /** Seconds clients are told to wait when triton-api is unreachable. @defaultValue 5 */
  retryAfterSeconds?: number;
  /** Shared with triton-api: makes it count a write against the user named, not the gateway. */
  gatewaySecret?: string | undefined;
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
  private readonly gatewaySecret: string | undefined;

  constructor({
    baseUrl,
    timeoutMs = 5000,
    retryAfterSeconds = 5,
    gatewaySecret,
  }: TritonClientOptions) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.retryAfterSeconds = retryAfterSeconds;
    this.gatewaySecret = gatewaySecret;
  }

  /**
   * Who a write is for: the end user's address (`forUser`), passed on so that triton-api's rate
   * limits count per user rather than per gateway.
   */
  private onBehalfOf(forUser: string | undefined): Record<string, string> {
    return forUser ? gatewayHeaders(forUser, this.gatewaySecret) : {};
  }

  /** Submits a job for the end user at address `forUser`. */
  submitGeneration(clientId: string, forUser?: string): Promise<JobAccepted> {
    const path = `/clients/${clientId}/generate-templates`;
    return this.request('POST', path, JobAccepted, undefined, this.onBehalfOf(forUser));
  }

  /** A job's status document (`JOB_NOT_FOUND` when triton-api has no such job). */
  getJob(jobId: string): Promise<JobStatusDocument> {
    return this.request('GET', `/jobs/${jobId}`, JobStatusDocument);
  }

  /** Cancels a job: 202 with its status document; `JOB_FINISHED` (409) once it ended. */
  cancelJob(jobId: string, forUser?: string): Promise<JobStatusDocument> {
    const path = `/jobs/${jobId}/cancel`;
    return this.request('POST', path, JobStatusDocument, undefined, this.onBehalfOf(forUser));
  }

  /** A job's stored templates, in order. */
  listJobTemplates(jobId: string): Promise<TemplateList> {
    return this.request('GET', `/jobs/${jobId}/templates`, TemplateList);
  }

  /** A page of clients, newest first. */
  listClients(page: { limit: number; offset: number }): Promise<ClientList> {
    return this.request('GET', `/clients/?limit=${page.limit}&offset=${page.offset}`, ClientList);
  }

  /** Creates a client for the end user at address `forUser`. */
  createClient(body: CreateClientBody, forUser?: string): Promise<Client> {
    return this.request('POST', '/clients/', Client, body, this.onBehalfOf(forUser));
  }

  /** Adds a client's value proposition for the end user at address `forUser`. */
  createValueProposition(
    clientId: string,
    body: CreateValuePropositionBody,
    forUser?: string,
  ): Promise<ValueProposition> {
    const path = `/clients/${clientId}/value-propositions`;
    return this.request('POST', path, ValueProposition, body, this.onBehalfOf(forUser));
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
