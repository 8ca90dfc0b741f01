import type { z } from 'zod';
import type { Principal } from '../common/api-keys.js';
import { GATEWAY_SECRET_HEADER, gatewayHeaders } from '../common/client-address.js';
import { identityHeaders } from '../common/gateway-identity.js';
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
  /**
   * Shared with triton-api: makes it count a write against the user named, not the gateway, and
   * (with `identity`) act for the caller named.
   */
  gatewaySecret?: string | undefined;
  /**
   * Auth on: every request names the caller it is made for (or this gateway itself, an admin
   * that only reads, for its own lookups), with the secret. @defaultValue false
   */
  identity?: boolean;
}

/** Whom a request to triton-api is made for. */
export interface Caller {
  /** The end user's address, for triton-api's rate limits (writes). */
  address?: string | undefined;
  /** The authenticated caller (auth on): triton-api shows and changes only what it may. */
  principal?: Principal | undefined;
}

/** This gateway's own reads (rebuilding a stream's state): every tenant's, and nothing else. */
const GATEWAY_ITSELF: Principal = Object.freeze({ tenant: null, admin: true });

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
  private readonly identity: boolean;

  constructor({
    baseUrl,
    timeoutMs = 5000,
    retryAfterSeconds = 5,
    gatewaySecret,
    identity = false,
  }: TritonClientOptions) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.retryAfterSeconds = retryAfterSeconds;
    this.gatewaySecret = gatewaySecret;
    this.identity = identity;
  }

  /**
   * The headers of a request made for `caller`: the end user's address, so that triton-api's
   * rate limits count per user rather than per gateway, and (auth on) who the caller is. Built
   * here from what the gateway verified, never from the client's own headers.
   */
  private headersFor({ address, principal }: Caller): Record<string, string> {
    const headers = address ? gatewayHeaders(address, this.gatewaySecret) : {};
    if (!this.identity || !this.gatewaySecret) return headers;
    return {
      ...headers,
      [GATEWAY_SECRET_HEADER]: this.gatewaySecret,
      ...identityHeaders(principal ?? GATEWAY_ITSELF),
    };
  }

  /** Submits a job for `caller`. */
  submitGeneration(clientId: string, caller: Caller = {}): Promise<JobAccepted> {
    const path = `/clients/${clientId}/generate-templates`;
    return this.request('POST', path, JobAccepted, undefined, this.headersFor(caller));
  }

  /** A job's status document (`JOB_NOT_FOUND` when triton-api has no such job). */
  getJob(jobId: string, caller: Caller = {}): Promise<JobStatusDocument> {
    return this.request(
      'GET',
      `/jobs/${jobId}`,
      JobStatusDocument,
      undefined,
      this.headersFor(caller),
    );
  }

  /** Cancels a job: 202 with its status document; `JOB_FINISHED` (409) once it ended. */
  cancelJob(jobId: string, caller: Caller = {}): Promise<JobStatusDocument> {
    const path = `/jobs/${jobId}/cancel`;
    return this.request('POST', path, JobStatusDocument, undefined, this.headersFor(caller));
  }

  /** A job's stored templates, in order. */
  listJobTemplates(jobId: string, caller: Caller = {}): Promise<TemplateList> {
    const path = `/jobs/${jobId}/templates`;
    return this.request('GET', path, TemplateList, undefined, this.headersFor(caller));
  }

  /** A page of clients, newest first. */
  listClients(page: { limit: number; offset: number }, caller: Caller = {}): Promise<ClientList> {
    const path = `/clients/?limit=${page.limit}&offset=${page.offset}`;
    return this.request('GET', path, ClientList, undefined, this.headersFor(caller));
  }

  /** Creates a client for `caller`. */
  createClient(body: CreateClientBody, caller: Caller = {}): Promise<Client> {
    return this.request('POST', '/clients/', Client, body, this.headersFor(caller));
  }

  /** Adds a client's value proposition for `caller`. */
  createValueProposition(
    clientId: string,
    body: CreateValuePropositionBody,
    caller: Caller = {},
  ): Promise<ValueProposition> {
    const path = `/clients/${clientId}/value-propositions`;
    return this.request('POST', path, ValueProposition, body, this.headersFor(caller));
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
