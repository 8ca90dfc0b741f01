import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  closingComment,
  formatSseEvent,
  HEARTBEAT_FRAME,
  retryFrame,
  SseParser,
  type SseMessage,
} from '../../src/contract/index.js';

/** Everything a parser reported for a stream fed in the given chunks. */
interface Parsed {
  events: SseMessage[];
  comments: string[];
  retries: number[];
  lastId: string | undefined;
}

function parse(chunks: readonly string[], initialLastEventId?: string): Parsed {
  const out: Parsed = { events: [], comments: [], retries: [], lastId: undefined };
  const parser = new SseParser(
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

describe('formatSseEvent', () => {
  it('writes an id line, a data line and a blank line', () => {
    expect(formatSseEvent(3, '{"seq":3}')).toBe('id: 3\ndata: {"seq":3}\n\n');
  });

  it('writes an event line only when an event name is given', () => {
    expect(formatSseEvent('a:1', 'x', 'resync')).toBe('id: a:1\nevent: resync\ndata: x\n\n');
  });

  it('splits multi-line data into one data line per line, for LF, CRLF and CR', () => {
    expect(formatSseEvent(1, 'a\nb\r\nc\rd')).toBe('id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n');
  });

  it('strips CR and LF from the id and the event name so a frame cannot be forged', () => {
    const frame = formatSseEvent('7\r\ndata: forged\n', 'x', 'ev\nid: 9');
    expect(frame).toBe('id: 7data: forged\nevent: evid: 9\ndata: x\n\n');
    expect(parse([frame]).events).toEqual([{ id: '7data: forged', event: 'evid: 9', data: 'x' }]);
  });

  it('round-trips through the parser, multi-line data included', () => {
    const data = 'line one\nline two\n\nline four';
    expect(parse([formatSseEvent(12, data)]).events).toEqual([
      { id: '12', event: 'message', data },
    ]);
  });

  it('writes the closing comment, the heartbeat and retry frames as the parser reads them', () => {
    const parsed = parse([
      HEARTBEAT_FRAME,
      retryFrame(2500.7),
      closingComment('completed'),
      closingComment('failed'),
    ]);
    expect(parsed.comments).toEqual([
      'heartbeat',
      'Connection closing - job completed',
      'Connection closing - job failed',
    ]);
    expect(parsed.retries).toEqual([2500]);
    expect(parsed.events).toEqual([]);
  });
});

describe('SseParser (WHATWG HTML §9.2 cases)', () => {
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
    const stream = ['id: 1', 'data: a', 'data: b', '', 'data: c', '', ''].join(eol);
    expect(parse([stream]).events).toEqual([
      { id: '1', event: 'message', data: 'a\nb' },
      { id: '1', event: 'message', data: 'c' },
    ]);
  });

  it('accepts mixed line endings in one stream', () => {
    expect(parse(['data: a\r\n\rdata: b\n\r\ndata: c\r\r']).events.map((e) => e.data)).toEqual([
      'a',
      'b',
      'c',
    ]);
  });

  it('does not dispatch an event that has no data', () => {
    const parsed = parse(['id: 5\nevent: ping\n\ndata: after\n\n']);
    // The event type is reset by the empty dispatch; the id persists.
    expect(parsed.events).toEqual([{ id: '5', event: 'message', data: 'after' }]);
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

  it('skips one leading BOM, and only at the very start of the stream', () => {
    expect(parse(['\uFEFFdata: a\n\n']).events.map((e) => e.data)).toEqual(['a']);
    expect(parse(['', '\uFEFF', 'data: a\n\n']).events.map((e) => e.data)).toEqual(['a']);
    // A second BOM is part of the first line: the field is "\uFEFFdata", unknown, ignored.
    expect(parse(['\uFEFF\uFEFFdata: a\n\n']).events).toEqual([]);
    expect(parse(['data: \uFEFFa\n\n']).events.map((e) => e.data)).toEqual(['\uFEFFa']);
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

/** A stream: lines joined by random line endings (CRLF, CR or LF, mixed), maybe with a BOM. */
const streamArb = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.tuple(lineArb, eolArb), { maxLength: 30 }),
    fc.option(lineArb, { nil: undefined }),
  )
  .map(
    ([bom, lines, tail]) =>
      `${bom ? '\uFEFF' : ''}${lines.map(([l, e]) => l + e).join('')}${tail ?? ''}`,
  );

describe('SseParser on arbitrarily split input', () => {
  it('yields the same events, comments and retries however the text is split into chunks', () => {
    fc.assert(
      fc.property(
        streamArb.chain((text) =>
          fc.tuple(fc.constant(text), fc.array(fc.nat(text.length), { maxLength: 12 })),
        ),
        ([text, cuts]) => {
          expect(parse(splitAt(text, cuts))).toEqual(parse([text]));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('yields the same result when fed one character at a time', () => {
    fc.assert(
      fc.property(streamArb, (text) => {
        expect(parse([...text])).toEqual(parse([text]));
      }),
      { numRuns: 200 },
    );
  });

  it('yields the same result for UTF-8 bytes split at every position and decoded as a stream', () => {
    const text =
      '\uFEFFid: 1\r\ndata: héllo wörld ✓ 🚀\r\n\r\n: 心跳\rdata: a\rdata: 😀\r\rretry: 10\n\n';
    const bytes = new TextEncoder().encode(text);
    const expected = parse([text]);
    expect(expected.events).toHaveLength(2);
    for (let i = 0; i <= bytes.length; i++) {
      for (const j of [i, i + 1, i + 2, bytes.length]) {
        if (j > bytes.length) continue;
        const decoder = new TextDecoder();
        const chunks = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)].map((b) =>
          decoder.decode(b, { stream: true }),
        );
        chunks.push(decoder.decode());
        expect(parse(chunks), `split at bytes ${i} and ${j}`).toEqual(expected);
      }
    }
  });
});
