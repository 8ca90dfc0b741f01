import { describe, expect, it } from 'vitest';
import { createEventStreamParser, type SseMessage } from '../../src/client/read-event-stream.js';
import {
  closingComment,
  formatSseEvent,
  HEARTBEAT_FRAME,
  retryFrame,
} from '../../src/contract/index.js';

/** What the client's parser reads from frames mare-api writes, fed in the given chunks. */
interface Parsed {
  events: SseMessage[];
  comments: string[];
  retries: number[];
  lastId: string | undefined;
}

function parse(chunks: readonly string[]): Parsed {
  const out: Parsed = { events: [], comments: [], retries: [], lastId: undefined };
  const parser = createEventStreamParser({
    onEvent: (m) => out.events.push(m),
    onComment: (c) => out.comments.push(c),
    onRetry: (ms) => out.retries.push(ms),
  });
  for (const chunk of chunks) parser.feed(chunk);
  out.lastId = parser.lastId;
  return out;
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
