/**
 * Parses one JSON text as `JSON.parse` does, but fails on an object with a key twice, which
 * `JSON.parse` accepts silently, keeping the last value (so a log line that says `job_id` twice
 * would pass any check made on its parsed object).
 */
export function parseJsonStrict(text: string): unknown {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at ${i}: ${text.slice(Math.max(0, i - 60), i + 60)}`);
  };
  const skipSpace = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const string = (): string => {
    const start = i++;
    while (i < text.length) {
      const c = text[i];
      if (c === '\\') i += 2;
      else if (c === '"') return JSON.parse(text.slice(start, ++i)) as string;
      else i++;
    }
    return fail('unterminated string');
  };
  const value = (): unknown => {
    skipSpace();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      const keys = new Set<string>();
      skipSpace();
      if (text[i] === '}') {
        i++;
        return out;
      }
      for (;;) {
        skipSpace();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        if (keys.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        keys.add(key);
        skipSpace();
        if (text[i++] !== ':') fail('expected ":"');
        Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true });
        skipSpace();
        const next = text[i++];
        if (next === '}') return out;
        if (next !== ',') fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const out: unknown[] = [];
      skipSpace();
      if (text[i] === ']') {
        i++;
        return out;
      }
      for (;;) {
        out.push(value());
        skipSpace();
        const next = text[i++];
        if (next === ']') return out;
        if (next !== ',') fail('expected "," or "]"');
      }
    }
    if (c === '"') return string();
    const literal = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(
      text.slice(i, i + 64),
    )?.[0];
    if (literal === undefined) return fail('unexpected character');
    i += literal.length;
    return JSON.parse(literal) as unknown;
  };
  const parsed = value();
  skipSpace();
  if (i !== text.length) fail('unexpected text after the value');
  return parsed;
}
