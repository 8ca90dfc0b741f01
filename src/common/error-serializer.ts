/**
 * How errors appear in log lines: type, message, code and (for programming errors) stack, with
 * every credential taken out. Redis client errors carry the command that failed, and a failed
 * `HELLO 3 AUTH default <password>` carries the password: those arguments never reach a log.
 */

/** `scheme://user:password@` or `scheme://token@`: the part before `@` is a credential. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@]*)@/gi;

/** Redis commands whose arguments may hold a password (`CONFIG SET requirepass`, `ACL SETUSER`…). */
const SECRET_COMMANDS = new Set(['auth', 'hello', 'migrate', 'acl', 'config', 'sentinel']);

/** Arguments of other commands shown, each cut to a length: enough to tell which key failed. */
const MAX_ARGS = 3;
const MAX_ARG_LENGTH = 80;
const MAX_CAUSE_DEPTH = 3;

/** An API key's secret: `tek_<id>_` stays, so that a line still says which key it was. */
const API_KEY_SECRET = /\b(tek_[A-Za-z0-9_-]{12}_)[A-Za-z0-9_-]{43}/g;
/** A stream token in a query string, or any JWT-shaped text (`eyJ….eyJ….…`). */
const TOKEN_PARAM = /([?&](?:token|access_token)=)[^&#\s"']+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g;

/**
 * `text` with every credential in it hidden, wherever it appears (a message, a stack, a field):
 * the password of a URL (`redis://:***@host`), the secret of an API key (`tek_<id>_***`), a
 * stream token (`?token=***`).
 */
export function redactCredentials(text: string): string {
  let out = text;
  if (out.includes('tek_')) out = out.replace(API_KEY_SECRET, '$1***');
  if (out.includes('eyJ')) out = out.replace(JWT, '***');
  if (out.includes('token=')) out = out.replace(TOKEN_PARAM, '$1***');
  if (!out.includes('://')) return out;
  return out.replace(URL_CREDENTIALS, (_match, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon === -1 ? `${scheme}***@` : `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
}

/**
 * A request's URL with every query value hidden (`/v1/triton/events?token=***&history=***`):
 * what log lines and error messages show of it, since a query may carry a stream token.
 */
export function redactQuery(url: string): string {
  const query = url.indexOf('?');
  if (query === -1) return url;
  return url.slice(0, query + 1) + url.slice(query + 1).replace(/=[^&#]*/g, '=***');
}

/** A log line's view of a failed Redis command: its name, and arguments only where harmless. */
function commandOf(command: unknown): { name: string; args?: string[] } | undefined {
  if (typeof command !== 'object' || command === null) return undefined;
  const { name, args } = command as { name?: unknown; args?: unknown };
  if (typeof name !== 'string') return undefined;
  if (SECRET_COMMANDS.has(name.toLowerCase()) || !Array.isArray(args)) return { name };
  return {
    name,
    args: args.slice(0, MAX_ARGS).map((arg: unknown) => {
      const text = Buffer.isBuffer(arg) ? `<${arg.length} bytes>` : redactCredentials(String(arg));
      return text.length > MAX_ARG_LENGTH ? `${text.slice(0, MAX_ARG_LENGTH)}…` : text;
    }),
  };
}

/** A thrown non-error as text (a string as it is; anything else as JSON, if it has any). */
function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}

/** What a log line shows of an error. */
export interface SerializedError {
  type: string;
  message: string;
  code?: string | number;
  /** The Redis command that failed (ioredis errors). */
  command?: { name: string; args?: string[] };
  stack?: string;
  cause?: SerializedError | string;
  [key: string]: unknown;
}

function serialize(err: Error, depth: number): SerializedError {
  const out: SerializedError = {
    type: err.constructor?.name || err.name || 'Error',
    message: redactCredentials(err.message),
  };
  const source = err as Error & Record<string, unknown>;
  for (const key of Object.keys(source)) {
    const value = source[key];
    if (key === 'command' || key === 'cause' || key === 'errors') continue;
    if (typeof value === 'string') out[key] = redactCredentials(value);
    else if (typeof value === 'number' || typeof value === 'boolean') out[key] = value;
  }
  const command = commandOf(source.command);
  // A Redis reply error's stack is the client's reply parser, the same for every failure: it
  // says nothing the message and command do not, and an outage would repeat it on every retry.
  if (command) out.command = command;
  else if (err.stack) out.stack = redactCredentials(err.stack);
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) {
    const cause: unknown = err.cause;
    out.cause =
      cause instanceof Error ? serialize(cause, depth + 1) : redactCredentials(textOf(cause));
  }
  if (Array.isArray(source.errors) && depth < MAX_CAUSE_DEPTH) {
    out.errors = source.errors
      .slice(0, 5)
      .map((e: unknown) =>
        e instanceof Error ? serialize(e, depth + 1) : redactCredentials(textOf(e)),
      );
  }
  return out;
}

/**
 * The log serializer of `err` fields: an Error becomes {@link SerializedError}; a string (an
 * error's message) has its credentials hidden; anything else is logged as it is.
 */
export function serializeError(err: unknown): unknown {
  if (err instanceof Error) return serialize(err, 0);
  if (typeof err === 'string') return redactCredentials(err);
  return err;
}
