import { z } from 'zod';

/**
 * Any RFC 4122-shaped id, the nil UUID included: a job submitted for client
 * `00000000-0000-0000-0000-000000000000` must be accepted and then fail as a job (the failure
 * drill of the compatibility suite, docs/contract.md).
 */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in a body or an event. */
export const Uuid = z
  .string()
  .regex(UUID_PATTERN, 'must be a UUID such as 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f');

/** A UUID in a path, normalised to lower case so that cache keys and channels never split. */
export const UuidParam = Uuid.transform((id) => id.toLowerCase());

/** True when `value` is a UUID in any letter case. */
export function isUuid(value: string): boolean {
  return value.length === 36 && UUID_PATTERN.test(value);
}
