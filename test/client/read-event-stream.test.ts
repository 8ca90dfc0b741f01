import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createEventStreamParser,
  readEventStream,
  type SseMessage,
} from '../../src/client/read-event-stream.js';

/**
 * The client's SSE reading: eventsource-parser behind the client's own shape, checked against
 * the WHATWG HTML §9.2 cases, arbitrary splits, and bytes split inside UTF-8 characters.
 */

interface Parsed {
  events: SseMessage[];
  comments: string[];
  retries: number[];
  lastId: string | undefined;
}

function parse(chunks: readonly string[], initialLastEventId?: string): Parsed {
  const out: Parsed = { events: [], comments: [], retries: [], lastId: undefined };
  const parser = createEventStreamParser(
    {
      onEvent: (m) => out.events.push(m),
      onComment: (c) => out.comments.push(c),
      onRetry: (ms) => out.retries.push(ms),
    },
    initialLastEventId,
  );
  for (const chunk of chunks) parser.feed(chunk);
  out.lastId = parser.lastId;
  return out;
}

/** What {@link readEventStream} reports for a body that arrives in the given byte chunks. */
async function readBytes(chunks: readonly Uint8Array[]): Promise<Omit<Parsed, 'lastId'>> {
  const out = { events: [] as SseMessage[], comments: [] as string[], retries: [] as number[] };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  const end = await readEventStream(
    body,
    {
      onEvent: (m) => out.events.push(m),
      onComment: (c) => out.comments.push(c),
      onRetry: (ms) => out.retries.push(ms),
    },
    { signal: new AbortController().signal, idleTimeoutMs: 0 },
  );
  expect(end).toBe('ended');
  return out;
}

/** Splits `text` at the given positions (sorted, duplicates kept: they make empty chunks). */
function splitAt(text: string, positions: number[]): string[] {
  const cuts = [...positions].sort((a, b) => a - b);
  const chunks: string[] = [];
  let start = 0;
  for (const cut of cuts) {
    chunks.push(text.slice(start, cut));
    start = cut;
  }
  chunks.push(text.slice(start));
  return chunks;
}

describe('the client parser (WHATWG HTML §9.2 cases)', () => {
  it('parses the spec example: comment, id, data without space, empty id, leading space kept', () => {
    const stream =
      ': test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n';
    const parsed = parse([stream]);
    expect(parsed.comments).toEqual(['test stream']);
    // The third event has no terminating blank line, so it is never dispatched.
    expect(parsed.events).toEqual([
      { id: '1', event: 'message', data: 'first event' },
      { id: '', event: 'message', data: 'second event' },
    ]);
    expect(parse([`${stream}\n`]).events[2]).toEqual({
      id: '',
      event: 'message',
      data: ' third event',
    });
  });

  it('dispatches empty data and a lone newline as the spec example says', () => {
    const parsed = parse(['data\n\ndata\ndata\n\ndata:\n']);
    expect(parsed.events.map((e) => e.data)).toEqual(['', '\n']);
  });

  it('treats "data:test" and "data: test" alike (one optional space after the colon)', () => {
    expect(parse(['data:test\n\ndata: test\n\n']).events.map((e) => e.data)).toEqual([
      'test',
      'test',
    ]);
  });

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('accepts %s line endings', (_name, eol) => {
    // The comment after the last blank line: a CR that ends the input waits for a possible LF.
    const stream = ['id: 1', 'data: a', 'data: b', '', 'data: c', '', ': end', ''].join(eol);
    expect(parse([stream]).events).toEqual([
      { id: '1', event: 'message', data: 'a\nb' },
      { id: '1', event: 'message', data: 'c' },
    ]);
  });

  it('accepts mixed line endings in one stream', () => {
    expect(parse(['data: a\r\n\rdata: b\n\r\ndata: c\r\r\n']).events.map((e) => e.data)).toEqual([
      'a',
      'b',
      'c',
    ]);
  });

  it('does not dispatch an event that has no data, and resets its event name', () => {
    const parsed = parse(['event: ping\n\ndata: after\n\n']);
    expect(parsed.events).toEqual([{ id: undefined, event: 'message', data: 'after' }]);
  });

  it('keeps the last event id across events until a new id is sent', () => {
    const parsed = parse(['id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n']);
    expect(parsed.events.map((e) => e.id)).toEqual(['7', '7', '8']);
    expect(parsed.lastId).toBe('8');
  });

  it('starts from the initial last event id a reconnecting client already had', () => {
    const parsed = parse(['data: a\n\n'], '41');
    expect(parsed.events).toEqual([{ id: '41', event: 'message', data: 'a' }]);
  });

  it('resets the last event id on an empty id, as the all-jobs resync frame sends', () => {
    expect(parse(['id:\ndata: x\n\n'], 'job:3').lastId).toBe('');
  });

  it('ignores an id that contains NUL', () => {
    const parsed = parse(['id: 3\ndata: a\n\nid: 4\u00005\ndata: b\n\n']);
    expect(parsed.events.map((e) => e.id)).toEqual(['3', '3']);
  });

  it('uses the event field as the event name and resets it after each dispatch', () => {
    const parsed = parse(['event: resync\ndata: a\n\ndata: b\n\n']);
    expect(parsed.events.map((e) => e.event)).toEqual(['resync', 'message']);
  });

  it('reports comments and does not dispatch them', () => {
    const parsed = parse([': heartbeat\n\n:no space\n\n']);
    expect(parsed.comments).toEqual(['heartbeat', 'no space']);
    expect(parsed.events).toEqual([]);
  });

  it('ignores unknown fields and a field line without a colon other than data and id', () => {
    const parsed = parse(['foo: bar\nretryx: 5\nunknown\ndata: a\n\n']);
    expect(parsed.events).toEqual([{ id: undefined, event: 'message', data: 'a' }]);
  });

  it('reports retry only when its value is all ASCII digits', () => {
    const parsed = parse(['retry: 3000\n\nretry:1500\n\nretry: 1.5\n\nretry: -1\n\nretry: x\n\n']);
    expect(parsed.retries).toEqual([3000, 1500]);
    expect(parsed.events).toEqual([]);
  });

  it('treats a CR at the end of one chunk and a LF at the start of the next as one line end', () => {
    const parsed = parse(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
    expect(parsed.events).toEqual([{ id: undefined, event: 'message', data: 'a\nb' }]);
  });

  it('keeps a CR-LF pair together across an empty chunk', () => {
    const parsed = parse(['data: a\r', '', '\ndata: b\r\n\r\n']);
    expect(parsed.events).toEqual([{ id: undefined, event: 'message', data: 'a\nb' }]);
  });

  it('discards an event that the stream ends in the middle of', () => {
    expect(parse(['data: a\n\ndata: b\n']).events.map((e) => e.data)).toEqual(['a']);
  });
});

describe('readEventStream', () => {
  const encode = (text: string) => new TextEncoder().encode(text);

  it('skips one leading BOM, and only at the very start of the stream', async () => {
    expect((await readBytes([encode('\uFEFFdata: a\n\n')])).events.map((e) => e.data)).toEqual([
      'a',
    ]);
    const bom = encode('\uFEFF');
    const split = [bom.subarray(0, 1), bom.subarray(1), encode('data: a\n\n')];
    expect((await readBytes(split)).events.map((e) => e.data)).toEqual(['a']);
    // A second BOM is part of the first line: the field is "\uFEFFdata", unknown, ignored.
    expect((await readBytes([encode('\uFEFF\uFEFFdata: a\n\n')])).events).toEqual([]);
    expect((await readBytes([encode('data: \uFEFFa\n\n')])).events.map((e) => e.data)).toEqual([
      '\uFEFFa',
    ]);
  });

  it('reads the same events whatever bytes the body is split at, inside characters included', async () => {
    const text =
      '\uFEFFid: 1\r\ndata: héllo wörld ✓ 🚀\r\n\r\n: 心跳\rdata: a\rdata: 😀\r\rretry: 10\n\n';
    const bytes = encode(text);
    const expected = await readBytes([bytes]);
    expect(expected.events).toEqual([
      { id: '1', event: 'message', data: 'héllo wörld ✓ 🚀' },
      { id: '1', event: 'message', data: 'a\n😀' },
    ]);
    expect(expected.comments).toEqual(['心跳']);
    expect(expected.retries).toEqual([10]);
    for (let i = 0; i <= bytes.length; i++) {
      for (const j of [i, i + 1, i + 2, bytes.length]) {
        if (j > bytes.length) continue;
        const chunks = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)];
        expect(await readBytes(chunks), `split at bytes ${i} and ${j}`).toEqual(expected);
      }
    }
  });

  it('reports "aborted" when its signal stops a body that is still open', async () => {
    const controller = new AbortController();
    const events: SseMessage[] = [];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('data: a\n\n'));
      },
    });
    const reading = readEventStream(
      body,
      {
        onEvent: (m) => {
          events.push(m);
          controller.abort();
        },
      },
      { signal: controller.signal, idleTimeoutMs: 0 },
    );
    expect(await reading).toBe('aborted');
    expect(events.map((e) => e.data)).toEqual(['a']);
  });

  it('reports "stalled" when a body stays silent past the idle timeout', async () => {
    const body = new ReadableStream<Uint8Array>({ start() {} });
    const end = await readEventStream(
      body,
      { onEvent: () => undefined },
      { signal: new AbortController().signal, idleTimeoutMs: 50 },
    );
    expect(end).toBe('stalled');
  });
});

/** One SSE line, as a generator of spec-valid streams writes it. */
const lineArb = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => `data: ${s.replace(/[\r\n]/g, '')}`),
  fc.string({ maxLength: 4 }).map((s) => `data:${s.replace(/[\r\n]/g, '')}`),
  fc.constant('data'),
  fc.nat(99).map((n) => `id: ${n}`),
  fc.constant('id'),
  fc.constantFrom('event: resync', 'event:x', 'event'),
  fc.nat(10_000).map((n) => `retry: ${n}`),
  fc.string({ maxLength: 6 }).map((s) => `:${s.replace(/[\r\n]/g, '')}`),
  fc.constantFrom('', '', ''),
  fc.constant('unknown: field'),
);
const eolArb = fc.constantFrom('\n', '\r\n', '\r');

/** A stream: lines joined by random line endings (CRLF, CR or LF, mixed). */
const streamArb = fc
  .tuple(
    fc.array(fc.tuple(lineArb, eolArb), { maxLength: 30 }),
    fc.option(lineArb, { nil: undefined }),
  )
  .map(([lines, tail]) => `${lines.map(([l, e]) => l + e).join('')}${tail ?? ''}`);

// Each stream is followed by a LF: a line that ends in a CR is reported once the next line
// ending arrives (the CR may be half of a CR LF), so only then must every split agree.
describe('the client parser on arbitrarily split input', () => {
  it('yields the same events, comments and retries however the text is split into chunks', () => {
    fc.assert(
      fc.property(
        streamArb.chain((text) =>
          fc.tuple(fc.constant(text), fc.array(fc.nat(text.length), { maxLength: 12 })),
        ),
        ([text, cuts]) => {
          expect(parse([...splitAt(text, cuts), '\n'])).toEqual(parse([`${text}\n`]));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('yields the same result when fed one character at a time', () => {
    fc.assert(
      fc.property(streamArb, (text) => {
        expect(parse([...text, '\n'])).toEqual(parse([`${text}\n`]));
      }),
      { numRuns: 200 },
    );
  });
});
