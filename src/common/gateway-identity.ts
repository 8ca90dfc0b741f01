import type { FastifyRequest } from 'fastify';
import { TENANT_PATTERN } from '../contract/index.js';
import type { Principal } from './api-keys.js';
import { gatewaySecretChecker } from './client-address.js';

/** The tenant mare-api makes a request to triton-api for. */
export const GATEWAY_TENANT_HEADER = 'x-triton-tenant';
/** `true` when that caller is an admin (sees every tenant). */
export const GATEWAY_ADMIN_HEADER = 'x-triton-admin';

/**
 * The headers with which mare-api names, to triton-api, the caller it makes a request for. They
 * count only beside GATEWAY_SECRET (see {@link gatewayIdentityOf}): from anyone else they are
 * ignored, and mare-api never passes a client's own headers on.
 */
export function identityHeaders(principal: Principal): Record<string, string> {
  return {
    ...(principal.tenant === null ? {} : { [GATEWAY_TENANT_HEADER]: principal.tenant }),
    [GATEWAY_ADMIN_HEADER]: principal.admin ? 'true' : 'false',
  };
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * How triton-api reads the caller mare-api names: only from a request that carries the gateway's
 * secret (the check that also makes it believe the user's address), else undefined.
 */
export function gatewayIdentityOf(
  gatewaySecret: string | undefined,
): (request: FastifyRequest) => Principal | undefined {
  const fromGateway = gatewaySecretChecker(gatewaySecret);
  return (request) => {
    if (!fromGateway(request)) return undefined;
    const tenant = header(request, GATEWAY_TENANT_HEADER);
    const admin = header(request, GATEWAY_ADMIN_HEADER) === 'true';
    if (tenant === undefined) return admin ? { tenant: null, admin } : undefined;
    return TENANT_PATTERN.test(tenant) ? { tenant, admin } : undefined;
  };
}
