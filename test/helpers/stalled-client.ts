import { connect, type Socket } from 'node:net';
import { createEventStreamParser, type SseMessage } from '../../src/client/read-event-stream.js';

/**
 * An SSE request on a raw socket that the test can stop reading, as a stalled client would:
 * while it is paused, nothing is read from the socket, so the kernel's buffers fill up and the
 * server sees a connection that does not keep up.
 */
export class StalledClient {
  readonly chunks: Buffer[] = [];
  /** Resolves once the connection is closed, by either side. */
  readonly closed: Promise<void>;
  private readonly socket: Socket;

  constructor(url: string, { lastEventId }: { lastEventId?: string } = {}) {
    const u = new URL(url);
    this.socket = connect(Number(u.port), u.hostname);
    const resume = lastEventId === undefined ? '' : `Last-Event-ID: ${lastEventId}\r\n`;
    this.socket.write(
      `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\n${resume}Connection: close\r\n\r\n`,
    );
    this.socket.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.on('error', () => undefined);
  }

  /** Everything received so far, the HTTP head included. */
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readableEnded;
  }

  /** Stops reading from the socket. */
  pause(): void {
    this.socket.pause();
  }

  /** Reads again. */
  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The response body received so far, its chunked transfer encoding undone. */
  body(): string {
    const all = Buffer.concat(this.chunks);
    const head = all.indexOf('\r\n\r\n');
    if (head === -1) return '';
    const parts: Buffer[] = [];
    let at = head + 4;
    // `<hex size>\r\n<data>\r\n` … `0\r\n\r\n`; a chunk still arriving is left out.
    for (;;) {
      const lineEnd = all.indexOf('\r\n', at);
      if (lineEnd === -1) break;
      const size = parseInt(all.subarray(at, lineEnd).toString('latin1'), 16);
      if (!Number.isFinite(size) || size === 0) break;
      const start = lineEnd + 2;
      if (start + size > all.length) break;
      parts.push(all.subarray(start, start + size));
      at = start + size + 2;
    }
    return Buffer.concat(parts).toString('utf8');
  }

  /** The SSE events in the body received so far. */
  events(): SseMessage[] {
    const events: SseMessage[] = [];
    createEventStreamParser({ onEvent: (m) => events.push(m) }).feed(this.body());
    return events;
  }

  /** The comment lines in the body received so far (heartbeats, the closing comment). */
  comments(): string[] {
    const comments: string[] = [];
    createEventStreamParser({
      onEvent: () => undefined,
      onComment: (c) => comments.push(c),
    }).feed(this.body());
    return comments;
  }
}
