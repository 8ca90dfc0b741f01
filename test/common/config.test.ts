import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  configVariables,
  loadConfig,
  requireAuthDecision,
} from '../../src/common/config.js';

const ENV_EXAMPLE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../.env.example',
);

/** The `# NAME=value` lines of `.env.example`, in order. */
function exampleEntries(): { name: string; value: string }[] {
  const entries: { name: string; value: string }[] = [];
  for (const line of readFileSync(ENV_EXAMPLE, 'utf8').split(/\r?\n/)) {
    const match = /^#\s?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) entries.push({ name: match[1] ?? '', value: match[2] ?? '' });
  }
  return entries;
}

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('defaults to ports 8000 and 16000, a one-hour result cache and an embedded database', () => {
    const config = loadConfig({});
    expect(config.common).toMatchObject({
      logLevel: 'info',
      logFormat: 'auto',
      host: '127.0.0.1',
      dataDir: path.resolve('.data'),
      redisUrl: undefined,
      keyPrefix: '',
      embeddedRedisPort: 6379,
      bodyLimitBytes: 64 * 1024,
      trustProxy: false,
      gatewaySecret: undefined,
      submitRateLimitPerMinute: 120,
      writeRateLimitPerMinute: 120,
      shutdownTimeoutMs: 25_000,
    });
    expect(config.triton).toMatchObject({
      port: 8000,
      databaseUrl: undefined,
      pgliteDataDir: path.resolve('.data/pglite'),
      inProcessWorker: true,
      workerConcurrency: 4,
      generationStepMs: 285,
      jobAttempts: 3,
      jobTimeoutMs: 600_000,
      jobLockMs: 30_000,
      jobMaxStalled: 1,
      jobSweepIntervalMs: 15_000,
      history: { ttlSeconds: 86_400, maxPerJob: 1000, maxGlobal: 10_000 },
    });
    expect(config.mare).toMatchObject({
      port: 16000,
      tritonApiUrl: 'http://127.0.0.1:8000',
      tritonRedisUrl: undefined,
      resultCacheTtlSeconds: 3600,
      tritonRequestTimeoutMs: 5000,
      sseHeartbeatMs: 15_000,
      sseRetryMs: 2000,
      sseMaxConnections: 20_000,
      sseHighWaterBytes: 64 * 1024,
      sseMaxPendingEvents: 256,
    });
  });

  it('reads nothing but the given environment', () => {
    expect(loadConfig({ UNRELATED: 'x', PATH: '/bin' })).toEqual(loadConfig({}));
  });

  it('reads values, coercing numbers and trimming surrounding space', () => {
    const config = loadConfig({
      TRITON_API_PORT: ' 8100 ',
      MARE_API_PORT: '16100',
      REDIS_URL: 'redis://:secret@cache.internal:6380/2',
      DATABASE_URL: 'postgresql://triton@db.internal/triton',
      RESULT_CACHE_TTL_SECONDS: '60',
      REDIS_KEY_PREFIX: 'staging:',
      TRITON_API_URL: 'http://triton.internal:8000//',
    });
    expect(config.triton.port).toBe(8100);
    expect(config.mare.port).toBe(16100);
    expect(config.common.redisUrl).toBe('redis://:secret@cache.internal:6380/2');
    expect(config.common.keyPrefix).toBe('staging:');
    expect(config.triton.databaseUrl).toBe('postgresql://triton@db.internal/triton');
    expect(config.mare.resultCacheTtlSeconds).toBe(60);
    expect(config.mare.tritonApiUrl).toBe('http://triton.internal:8000');
  });

  it('counts empty and blank values as unset', () => {
    const blank = Object.fromEntries(configVariables().map((name, i) => [name, i % 2 ? '' : '  ']));
    expect(loadConfig(blank)).toEqual(loadConfig({}));
  });

  it('runs a worker in triton-api exactly when the database is embedded, unless told', () => {
    const pgUrl = 'postgres://localhost/triton';
    expect(loadConfig({}).triton.inProcessWorker).toBe(true);
    expect(loadConfig({ DATABASE_URL: pgUrl }).triton.inProcessWorker).toBe(false);
    expect(
      loadConfig({ DATABASE_URL: pgUrl, TRITON_API_WORKER: 'true' }).triton.inProcessWorker,
    ).toBe(true);
    expect(loadConfig({ TRITON_API_WORKER: 'false' }).triton.inProcessWorker).toBe(false);
  });

  it('serves the queue UI exactly when HOST is a loopback address, unless told', () => {
    expect(loadConfig({}).triton.queueUi).toBe(true);
    expect(loadConfig({ HOST: 'localhost' }).triton.queueUi).toBe(true);
    expect(loadConfig({ HOST: '::1' }).triton.queueUi).toBe(true);
    expect(loadConfig({ HOST: '127.0.1.1' }).triton.queueUi).toBe(true);
    expect(loadConfig({ HOST: '0.0.0.0' }).triton.queueUi).toBe(false);
    expect(loadConfig({ HOST: '10.0.0.5' }).triton.queueUi).toBe(false);
    expect(loadConfig({ HOST: '0.0.0.0', QUEUE_UI: 'true' }).triton.queueUi).toBe(true);
    expect(loadConfig({ QUEUE_UI: 'false' }).triton.queueUi).toBe(false);
  });

  it('keeps memory:// for PGlite as is and resolves a data dir to an absolute path', () => {
    expect(loadConfig({ PGLITE_DATA_DIR: 'memory://' }).triton.pgliteDataDir).toBe('memory://');
    expect(loadConfig({ DATA_DIR: 'var/x' }).triton.pgliteDataDir).toBe(
      path.resolve('var/x/pglite'),
    );
  });

  it('returns a deeply frozen object', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.triton)).toBe(true);
    expect(Object.isFrozen(config.triton.history)).toBe(true);
  });

  it.each([
    ['TRITON_API_PORT', 'abc'],
    ['TRITON_API_PORT', '0'],
    ['MARE_API_PORT', '65536'],
    ['EMBEDDED_REDIS_PORT', '63.5'],
    ['REDIS_URL', 'http://x'],
    ['REDIS_URL', 'localhost:6379'],
    ['REDIS_URL', 'redis+sentinel://s1:26379'],
    ['REDIS_URL', 'redis+sentinel://s1:26379,s2:99999/mymaster'],
    ['REDIS_URL', 'redis+sentinel://s1/mymaster/0/extra'],
    ['TRITON_REDIS_URL', 'postgres://x'],
    ['DATABASE_URL', 'mysql://db/triton'],
    ['TRITON_API_URL', 'not a url'],
    ['LOG_LEVEL', 'verbose'],
    ['LOG_FORMAT', 'xml'],
    ['TRITON_API_WORKER', 'yes'],
    ['QUEUE_UI', 'on'],
    ['REDIS_KEY_PREFIX', 'has space'],
    ['RESULT_CACHE_TTL_SECONDS', '-1'],
    ['WORKER_CONCURRENCY', '0'],
    ['GENERATION_STEP_MS', '-5'],
    ['BODY_LIMIT_BYTES', '1e'],
    ['SSE_HEARTBEAT_MS', 'soon'],
    ['JOB_MAX_STALLED', '-1'],
    ['SUBMIT_RATE_LIMIT_PER_MINUTE', 'many'],
    ['WRITE_RATE_LIMIT_PER_MINUTE', '-1'],
  ])('rejects %s=%s with a one-line ConfigError naming the variable', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.message).not.toMatch(/[\r\n]/);
    expect(err.message).toContain(`${name}:`);
    expect(err.message).toContain(JSON.stringify(value));
  });

  it('keeps the message to one line even when the bad value holds a newline', () => {
    const err = configError({ TRITON_API_PORT: '80\n80' });
    expect(err.message).not.toMatch(/[\r\n]/);
    expect(err.message).toContain('TRITON_API_PORT');
  });

  it('reads TRUST_PROXY as trust nobody, everybody, or the peers it names', () => {
    expect(loadConfig({ TRUST_PROXY: 'false' }).common.trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'true' }).common.trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).common.trustProxy).toBe(
      'loopback, 10.0.0.0/8',
    );
  });

  it('names a bad secret without showing it, and a bad URL without its password', () => {
    const secret = configError({ GATEWAY_SECRET: 'short-secret' });
    expect(secret.message).toBe(
      'Invalid configuration: GATEWAY_SECRET: must be at least 16 characters',
    );
    const url = configError({ REDIS_URL: 'http://:hunter2-password@cache:6379' });
    expect(url.message).toContain('REDIS_URL');
    expect(url.message).not.toContain('hunter2-password');
  });

  it('names the first bad variable when several are bad', () => {
    const err = configError({ REDIS_URL: 'http://x', MARE_API_PORT: 'abc' });
    expect(err.message).toMatch(/^Invalid configuration: (REDIS_URL|MARE_API_PORT): /);
  });
});

describe('loadConfig: Redis behind Sentinel', () => {
  it('takes a redis+sentinel:// REDIS_URL as it is, password and all', () => {
    const url = 'redis+sentinel://app:s3cret@s1:26379,[::1]:26380,s3/mymaster/2';
    expect(loadConfig({ REDIS_URL: url }).common.redisUrl).toBe(url);
    expect(loadConfig({ TRITON_REDIS_URL: url }).mare.tritonRedisUrl).toBe(url);
  });

  it('says what is wrong with a Sentinel URL it cannot read, without its password', () => {
    const err = configError({ REDIS_URL: 'redis+sentinel://app:s3cret@s1:26379' });
    expect(err.message).toContain('REDIS_URL: is a Sentinel URL that names no master');
    expect(err.message).not.toContain('s3cret');
  });

  it('refuses REDIS_HOST and its kin beside a Sentinel REDIS_URL, which they cannot describe', () => {
    const err = configError({ REDIS_URL: 'redis+sentinel://s1/mymaster', REDIS_PASSWORD: 'pw' });
    expect(err.message).toBe(
      'Invalid configuration: REDIS_URL names Sentinel, which REDIS_PASSWORD cannot describe; set only REDIS_URL',
    );
  });
});

describe('loadConfig: Redis named in parts (REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD)', () => {
  it('makes the Redis URL from them, the rest defaulting to 127.0.0.1:6379, database 0, no password', () => {
    const config = loadConfig({
      REDIS_HOST: 'cache.internal',
      REDIS_PORT: '6380',
      REDIS_DB: '3',
      REDIS_PASSWORD: 'p@ss:word/with%odd chars',
    });
    expect(config.common.redisUrl).toBe(
      'redis://:p%40ss%3Aword%2Fwith%25odd%20chars@cache.internal:6380/3',
    );
    expect(decodeURIComponent(new URL(config.common.redisUrl ?? '').password)).toBe(
      'p@ss:word/with%odd chars',
    );
    expect(config.common.redisUrlFrom).toBe('REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD');
    expect(loadConfig({ REDIS_DB: '2' }).common.redisUrl).toBe('redis://127.0.0.1:6379/2');
    expect(loadConfig({ REDIS_HOST: '::1' }).common.redisUrl).toBe('redis://[::1]:6379/0');
    expect(loadConfig({}).common.redisUrl).toBeUndefined();
    expect(loadConfig({ REDIS_URL: 'redis://r:6379' }).common.redisUrlFrom).toBe('REDIS_URL');
  });

  it('accepts them beside REDIS_URL when they agree with it', () => {
    const config = loadConfig({
      REDIS_URL: 'redis://:secret@cache.internal:6380/3',
      REDIS_HOST: 'CACHE.internal',
      REDIS_PORT: '6380',
      REDIS_DB: '3',
      REDIS_PASSWORD: 'secret',
    });
    expect(config.common.redisUrl).toBe('redis://:secret@cache.internal:6380/3');
    expect(loadConfig({ REDIS_URL: 'redis://cache', REDIS_PORT: '6379' }).common.redisUrl).toBe(
      'redis://cache',
    );
  });

  it.each([
    [
      { REDIS_HOST: 'other.internal' },
      'REDIS_HOST',
      'REDIS_URL says cache.internal, REDIS_HOST says other.internal',
    ],
    [{ REDIS_PORT: '6381' }, 'REDIS_PORT', 'REDIS_URL says 6380, REDIS_PORT says 6381'],
    [{ REDIS_DB: '0' }, 'REDIS_DB', 'REDIS_URL says 3, REDIS_DB says 0'],
    [{ REDIS_PASSWORD: 'another-password' }, 'REDIS_PASSWORD', 'the passwords differ'],
  ])('stops with one line naming REDIS_URL and the part that disagrees: %o', (part, name, why) => {
    const err = configError({ REDIS_URL: 'redis://:secret@cache.internal:6380/3', ...part });
    expect(err.message).toBe(
      `Invalid configuration: REDIS_URL and ${name} disagree (${why}); set only one of them`,
    );
    expect(err.message).not.toContain('secret');
    expect(err.message).not.toContain('another-password');
  });

  it.each([
    ['REDIS_HOST', 'redis://cache'],
    ['REDIS_HOST', 'cache:6379'],
    ['REDIS_PORT', '70000'],
    ['REDIS_DB', '-1'],
    ['REDIS_DB', 'three'],
  ])('rejects %s=%s with a one-line ConfigError naming the variable', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.message).not.toMatch(/[\r\n]/);
    expect(err.message).toContain(`${name}:`);
  });
});

describe('loadConfig: template generator', () => {
  it('defaults to the built-in generator', () => {
    expect(loadConfig({}).triton.generator).toEqual({ type: 'builtin' });
    expect(loadConfig({ OPENAI_MODEL: 'ignored' }).triton.generator).toEqual({ type: 'builtin' });
  });

  it('reads GENERATOR=openai and its OPENAI_* variables, with defaults', () => {
    expect(
      loadConfig({ GENERATOR: 'openai', OPENAI_MODEL: 'gpt-4o-mini' }).triton.generator,
    ).toEqual({
      type: 'openai',
      baseUrl: 'https://api.openai.com/v1',
      apiKey: undefined,
      model: 'gpt-4o-mini',
      timeoutMs: 60_000,
      temperature: undefined,
      maxTokens: undefined,
      maxRetries: 3,
    });
    const config = loadConfig({
      GENERATOR: 'openai',
      OPENAI_BASE_URL: 'http://localhost:11434/v1/',
      OPENAI_API_KEY: 'ollama',
      OPENAI_MODEL: 'llama3.1',
      OPENAI_TIMEOUT_MS: '20000',
      OPENAI_TEMPERATURE: '0.7',
      OPENAI_MAX_TOKENS: '800',
      OPENAI_MAX_RETRIES: '0',
    });
    expect(config.triton.generator).toEqual({
      type: 'openai',
      baseUrl: 'http://localhost:11434/v1',
      apiKey: 'ollama',
      model: 'llama3.1',
      timeoutMs: 20_000,
      temperature: 0.7,
      maxTokens: 800,
      maxRetries: 0,
    });
    expect(Object.isFrozen(config.triton.generator)).toBe(true);
  });

  it('stops with one line naming OPENAI_MODEL when GENERATOR=openai has none, key unshown', () => {
    const err = configError({ GENERATOR: 'openai', OPENAI_API_KEY: 'sk-very-secret' });
    expect(err.message).toBe('Invalid configuration: OPENAI_MODEL: required when GENERATOR=openai');
  });

  it.each([
    ['GENERATOR', 'gpt'],
    ['OPENAI_BASE_URL', 'localhost:11434'],
    ['OPENAI_BASE_URL', 'ftp://models.internal/v1'],
    ['OPENAI_TIMEOUT_MS', '0'],
    ['OPENAI_TEMPERATURE', '3'],
    ['OPENAI_TEMPERATURE', 'warm'],
    ['OPENAI_MAX_TOKENS', '-1'],
    ['OPENAI_MAX_TOKENS', '1.5'],
    ['OPENAI_MAX_RETRIES', 'many'],
    ['OPENAI_MAX_RETRIES', '11'],
  ])('rejects %s=%s with a one-line ConfigError naming the variable', (name, value) => {
    const err = configError({ GENERATOR: 'openai', OPENAI_MODEL: 'm', [name]: value });
    expect(err.message).not.toMatch(/[\r\n]/);
    expect(err.message).toContain(`${name}:`);
    expect(err.message).toContain(JSON.stringify(value));
  });
});

describe('.env.example', () => {
  it('lists exactly the variables loadConfig reads, each once', () => {
    const names = exampleEntries().map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...configVariables()].sort());
  });

  it('shows each default: uncommenting every line changes no setting', () => {
    const env = Object.fromEntries(exampleEntries().map((e) => [e.name, e.value]));
    expect(loadConfig(env)).toEqual(loadConfig({}));
  });

  it('keeps every variable commented out, with a one-line explanation above it', () => {
    const lines = readFileSync(ENV_EXAMPLE, 'utf8').split(/\r?\n/);
    lines.forEach((line, i) => {
      expect(line, `line ${i + 1} sets a variable`).not.toMatch(/^\s*[A-Z][A-Z0-9_]*=/);
      if (/^# [A-Z][A-Z0-9_]*=/.test(line)) {
        expect(lines[i - 1], `explanation above line ${i + 1}`).toMatch(/^# \S/);
        expect(lines[i - 1], `explanation above line ${i + 1}`).not.toMatch(/^# [A-Z0-9_]+=/);
      }
    });
  });

  it('groups the variables as common, then triton, then mare', () => {
    const text = readFileSync(ENV_EXAMPLE, 'utf8');
    const common = text.indexOf('# Common');
    const triton = text.indexOf('# triton');
    const mare = text.indexOf('# mare');
    expect(common).toBeGreaterThan(-1);
    expect(triton).toBeGreaterThan(common);
    expect(mare).toBeGreaterThan(triton);
    const section = (name: string) => {
      const at = text.indexOf(`# ${name}=`);
      return at < triton ? 'common' : at < mare ? 'triton' : 'mare';
    };
    expect(section('REDIS_URL')).toBe('common');
    expect(section('TRITON_API_PORT')).toBe('triton');
    expect(section('DATABASE_URL')).toBe('triton');
    expect(section('MARE_API_PORT')).toBe('mare');
    expect(section('TRITON_REDIS_URL')).toBe('mare');
    expect(section('GENERATOR')).toBe('triton');
    expect(section('OPENAI_API_KEY')).toBe('triton');
  });
});

describe('loadConfig: access control (AUTH, CORS_ORIGINS, METRICS_TOKEN, stream tokens)', () => {
  it('leaves AUTH unset by default, with any origin allowed and no token anywhere', () => {
    const config = loadConfig({});
    expect(config.common.auth).toBeUndefined();
    expect(config.common.corsOrigins).toBe('*');
    expect(config.common.metricsToken).toBeUndefined();
    expect(config.mare.streamTokenSecret).toBeUndefined();
    expect(config.mare.streamTokenTtlSeconds).toBe(900);
  });

  it('with AUTH=on allows no origin unless listed, and serves the queue UI (it asks for an admin key)', () => {
    const on = loadConfig({ AUTH: 'on', HOST: '0.0.0.0' });
    expect(on.common.auth).toBe('on');
    expect(on.common.corsOrigins).toEqual([]);
    expect(on.triton.queueUi).toBe(true);
    const listed = loadConfig({
      AUTH: 'on',
      CORS_ORIGINS: 'https://app.example.com, http://localhost:3000',
    });
    expect(listed.common.corsOrigins).toEqual(['https://app.example.com', 'http://localhost:3000']);
  });

  it.each([
    [{ AUTH: 'yes' }, 'AUTH'],
    [{ CORS_ORIGINS: 'https://app.example.com/path' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: '*,https://app.example.com' }, 'CORS_ORIGINS'],
    [{ AUTH: 'on', CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    [{ STREAM_TOKEN_SECRET: 'too-short' }, 'STREAM_TOKEN_SECRET'],
    [{ STREAM_TOKEN_TTL_SECONDS: '0' }, 'STREAM_TOKEN_TTL_SECONDS'],
    [{ METRICS_TOKEN: 'short' }, 'METRICS_TOKEN'],
  ])('refuses %j with one line naming %s, never showing a secret', (env, name) => {
    const err = configError(env);
    expect(err.message).toMatch(new RegExp(`^Invalid configuration: ${name}: `));
    expect(err.message).not.toContain('too-short');
    expect(err.message.split('\n')).toHaveLength(1);
  });

  it('an API refuses to start on an address others reach until AUTH is set, and with AUTH=on without its secrets', () => {
    const check =
      (env: Record<string, string>, mare = false) =>
      () => {
        const config = loadConfig(env);
        requireAuthDecision(config.common, mare ? config.mare : undefined);
      };
    expect(check({})).not.toThrow();
    expect(check({ HOST: 'localhost' })).not.toThrow();
    expect(check({ HOST: '0.0.0.0' })).toThrow(/^Invalid configuration: AUTH: /);
    expect(check({ HOST: '10.0.0.5' })).toThrow(ConfigError);
    expect(check({ HOST: '0.0.0.0', AUTH: 'off' })).not.toThrow();
    expect(check({ HOST: '0.0.0.0', AUTH: 'on' })).not.toThrow();
    expect(check({ AUTH: 'on' }, true)).toThrow(/^Invalid configuration: GATEWAY_SECRET: /);
    expect(check({ AUTH: 'on', GATEWAY_SECRET: 'g'.repeat(32) }, true)).toThrow(
      /^Invalid configuration: STREAM_TOKEN_SECRET: /,
    );
    expect(
      check(
        { AUTH: 'on', GATEWAY_SECRET: 'g'.repeat(32), STREAM_TOKEN_SECRET: 's'.repeat(32) },
        true,
      ),
    ).not.toThrow();
  });
});
