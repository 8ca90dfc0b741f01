import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';

/**
 * The header with which mare-api shows triton-api that the address in X-Forwarded-For is its
 * own word about the end user, not a caller's claim. It carries GATEWAY_SECRET.
 */
export const GATEWAY_SECRET_HEADER = 'x-gateway-secret';

/**
 * The headers mare-api sends triton-api with a request it makes for a user: the user's address,
 * and the secret that makes triton-api believe it (without one, only a TRUST_PROXY that names
 * the gateway does).
 */
export function gatewayHeaders(
  clientAddress: string,
  secret: string | undefined,
): Record<string, string> {
  return {
    'x-forwarded-for': clientAddress,
    ...(secret ? { [GATEWAY_SECRET_HEADER]: secret } : {}),
  };
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Whether a request carries the gateway's secret: the one test of "this comes from mare-api"
 * (for the user's address it names, and for the caller's identity it passes on).
 */
export function gatewaySecretChecker(
  gatewaySecret: string | undefined,
): (request: FastifyRequest) => boolean {
  if (!gatewaySecret) return () => false;
  const expected = digest(gatewaySecret);
  return (request) => {
    const given = request.headers[GATEWAY_SECRET_HEADER];
    // Compared as digests, in constant time: equal lengths, and no timing to guess it by.
    return typeof given === 'string' && timingSafeEqual(digest(given), expected);
  };
}

/**
 * How an API tells who a request comes from, for rate limits: the end user a gateway names
 * when the request carries the gateway's secret, else the caller's address (`request.ip`, which
 * honours TRUST_PROXY: by default the connection's own address).
 */
export function clientAddressOf(
  gatewaySecret: string | undefined,
): (request: FastifyRequest) => string {
  if (!gatewaySecret) return (request) => request.ip;
  const fromGateway = gatewaySecretChecker(gatewaySecret);
  return (request) => {
    if (fromGateway(request)) {
      const named = request.headers['x-forwarded-for'];
      const address = typeof named === 'string' ? named.trim() : '';
      if (isIP(address) !== 0) return address;
    }
    return request.ip;
  };
}
