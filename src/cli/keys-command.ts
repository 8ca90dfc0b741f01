import { parseArgs } from 'node:util';
import { ApiKeys, type ApiKeyInfo } from '../common/api-keys.js';
import { ConfigError, loadConfig } from '../common/config.js';
import { redactCredentials } from '../common/error-serializer.js';
import { closeRedis, createRedisClient, detectRedis, redactUrl } from '../common/redis.js';
import { createLogger } from '../common/logger.js';
import { createKeyspace, TENANT_PATTERN } from '../contract/index.js';

const USAGE = `Usage: triton-events keys <create|list|revoke> [options]

  keys create --tenant NAME [--admin]   Make an API key for a tenant and print it (only once:
                                        it is stored as a hash); --admin sees every tenant
  keys list [--json]                    Every key: id, tenant, admin, created, revoked
  keys revoke ID                        Revoke a key: every API refuses it within seconds

Keys live in the Redis the services use, named by the same environment (REDIS_URL or
REDIS_HOST…, REDIS_KEY_PREFIX); without one, the Redis \`npm start\` runs (127.0.0.1,
EMBEDDED_REDIS_PORT).`;

/** Where the command writes. */
interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

class UsageError extends Error {}

function table(keys: ApiKeyInfo[]): string {
  const rows = [
    ['ID', 'TENANT', 'ADMIN', 'CREATED', 'REVOKED'],
    ...keys.map((k) => [k.id, k.tenant, k.admin ? 'yes' : 'no', k.created_at, k.revoked_at ?? '-']),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * `triton-events keys …`: makes, lists and revokes API keys in the services' Redis. Runs where
 * the services run (it reads their environment and needs their Redis), not from the client
 * package. Resolves to the exit status.
 */
export async function runKeysCommand(
  argv: string[],
  io: Io = { out: process.stdout, err: process.stderr },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        tenant: { type: 'string' },
        admin: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    const [action, ...rest] = parsed.positionals;
    if (parsed.values.help) {
      io.out.write(`${USAGE}\n`);
      return EXIT.ok;
    }
    if (action === 'create') {
      const tenant = parsed.values.tenant;
      if (tenant === undefined) throw new UsageError('keys create needs --tenant NAME');
      if (!TENANT_PATTERN.test(tenant)) {
        throw new UsageError(
          `--tenant "${tenant}": a tenant is 1 to 63 lower-case letters, digits, dots, underscores or hyphens, starting with a letter or digit`,
        );
      }
      if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
    } else if (action === 'list') {
      if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
    } else if (action === 'revoke') {
      if (rest.length !== 1) throw new UsageError('keys revoke needs one key ID');
    } else {
      throw new UsageError('an action (create, list or revoke) is required');
    }
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      io.err.write(`triton-events keys: ${err.message}\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    throw err;
  }

  const [action, id] = parsed.positionals;
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err.write(`${err.message}\n`);
      return EXIT.failed;
    }
    throw err;
  }
  const url =
    config.common.redisUrl ?? `redis://127.0.0.1:${String(config.common.embeddedRedisPort)}`;
  const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
  let target;
  try {
    target = await detectRedis(url, 5000);
  } catch (err) {
    io.err.write(
      `triton-events keys: ${redactUrl(url)}: ${redactCredentials((err as Error).message)}\n`,
    );
    return EXIT.failed;
  }
  const redis = createRedisClient(target, { name: 'keys', logger, maxRetriesPerRequest: 1 });
  const keys = new ApiKeys({ redis, keyspace: createKeyspace(config.common.keyPrefix) });
  try {
    if (action === 'create') {
      const admin = parsed.values.admin;
      const { key, info } = await keys.create({ tenant: parsed.values.tenant ?? '', admin });
      // The key alone on stdout (`KEY=$(triton-events keys create …)`); what it is on stderr.
      io.out.write(`${key}\n`);
      io.err.write(
        `Created key ${info.id} for tenant ${info.tenant}${admin ? ' (admin: sees every tenant)' : ''}. ` +
          'It is shown this once: only its hash is stored.\n',
      );
      return EXIT.ok;
    }
    if (action === 'list') {
      const list = await keys.list();
      io.out.write(
        parsed.values.json
          ? list.map((k) => `${JSON.stringify(k)}\n`).join('')
          : `${table(list)}\n`,
      );
      return EXIT.ok;
    }
    const revoked = await keys.revoke(id ?? '');
    if (!revoked) {
      io.err.write(`triton-events keys: no key has the id "${id ?? ''}"\n`);
      return EXIT.failed;
    }
    io.err.write(
      `Revoked key ${revoked.id} of tenant ${revoked.tenant} (at ${revoked.revoked_at ?? ''}); ` +
        'every API refuses it within seconds.\n',
    );
    return EXIT.ok;
  } catch (err) {
    io.err.write(`triton-events keys: ${redactCredentials((err as Error).message)}\n`);
    return EXIT.failed;
  } finally {
    await closeRedis(redis);
  }
}
