import { errors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { AppError, TenantName, Uuid } from '../contract/index.js';
import type { ApiKeys, Principal } from '../common/api-keys.js';
import type { StreamGrant, StreamTokenVerifier } from '../common/request-auth.js';

/** Who the tokens are for: nothing else that shares the secret would accept them. */
const AUDIENCE = 'triton-events/stream';
/** Longer than any token this issues: anything longer is refused before it is parsed. */
const MAX_TOKEN_LENGTH = 1024;

/** A token's claims, as issued below. */
const Claims = z.object({
  sub: TenantName,
  /** The key it was issued with: a token stops working when its key is revoked. */
  key: z.string().min(1).max(64),
  /** Present on a token for one job's stream. */
  job: Uuid.optional(),
  /** Present (true) on an admin's token. */
  adm: z.literal(true).optional(),
});

/** How {@link StreamTokens} signs, how long its tokens last, and where it checks their keys. */
export interface StreamTokensOptions {
  /** STREAM_TOKEN_SECRET: every gateway of a deployment signs and checks with the same one. */
  secret: string;
  /** How long a token opens streams. @defaultValue 900 */
  ttlSeconds?: number;
  /** Where a token's key is checked for revocation. */
  keys: ApiKeys;
  /** The clock (tests). @defaultValue Date.now */
  now?: () => number;
}

/**
 * Stream tokens: what lets a browser's `EventSource`, which cannot send a header, open an SSE
 * route (`?token=`). Signed (HS256 JWTs) so that every gateway checks them without a lookup,
 * short-lived, and scoped: to one job's stream, or to a tenant's all-jobs stream. A token is
 * checked when a stream opens: an open stream outlives it, a reconnection needs a fresh one.
 * A token of a revoked key stops working as the key does. Neither tokens nor what is wrong with
 * one appear in a message beyond "invalid" or "expired".
 */
export class StreamTokens implements StreamTokenVerifier {
  private readonly key: Uint8Array;
  private readonly ttlSeconds: number;
  private readonly keys: ApiKeys;
  private readonly now: () => number;

  constructor({ secret, ttlSeconds = 900, keys, now = Date.now }: StreamTokensOptions) {
    this.key = new TextEncoder().encode(secret);
    this.ttlSeconds = ttlSeconds;
    this.keys = keys;
    this.now = now;
  }

  /** A token for `principal` (a key's) to open one job's stream, or (no job) the all-jobs one. */
  async issue(principal: Principal, jobId?: string): Promise<{ token: string; expiresAt: Date }> {
    if (principal.tenant === null || principal.keyId === undefined) {
      throw new Error('stream tokens are issued for a key');
    }
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresAt = issuedAt + this.ttlSeconds;
    const token = await new SignJWT({
      key: principal.keyId,
      ...(jobId === undefined ? {} : { job: jobId }),
      ...(principal.admin ? { adm: true } : {}),
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(principal.tenant)
      .setAudience(AUDIENCE)
      .setIssuedAt(issuedAt)
      .setExpirationTime(expiresAt)
      .sign(this.key);
    return { token, expiresAt: new Date(expiresAt * 1000) };
  }

  /** What a token grants; rejects with `UNAUTHORIZED` (401) for anything but a live, valid one. */
  async verify(token: string): Promise<StreamGrant> {
    if (token.length > MAX_TOKEN_LENGTH) throw invalid();
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        audience: AUDIENCE,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) {
        throw new AppError(
          'UNAUTHORIZED',
          'The stream token has expired: ask for a new one (POST /v1/triton/stream-tokens)',
        );
      }
      throw invalid();
    }
    const claims = Claims.safeParse(payload);
    if (!claims.success) throw invalid();
    const { sub, key, job, adm } = claims.data;
    if (!(await this.keys.active(key))) {
      throw new AppError('UNAUTHORIZED', 'The key this stream token was issued for is revoked');
    }
    return {
      principal: { tenant: sub, admin: adm === true, keyId: key },
      jobId: job?.toLowerCase(),
    };
  }
}

function invalid(): AppError {
  return new AppError('UNAUTHORIZED', 'The stream token is not valid');
}
