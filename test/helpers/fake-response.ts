import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';

/**
 * Just enough of a `ServerResponse` for one SSE stream: it records what reaches the "socket"
 * (one entry per system call: corked writes arrive together at `uncork()`), and it can be made
 * congested, as a socket whose client stopped reading is, and drained again.
 */
export class FakeResponse extends EventEmitter {
  /** Text of each system call, in order. */
  readonly flushes: string[] = [];
  statusCode = 0;
  headers: Record<string, string> = {};
  ended = false;
  destroyed = false;
  private corks = 0;
  private corked = '';
  /** Bytes the client has not read, while congested. */
  private unread = 0;
  private congested = false;

  /** Everything that reached the socket. */
  get text(): string {
    return this.flushes.join('');
  }

  get writableNeedDrain(): boolean {
    return this.congested;
  }

  get writableLength(): number {
    return this.unread;
  }

  writeHead(status: number, headers: Record<string, string>): this {
    this.statusCode = status;
    this.headers = headers;
    return this;
  }

  cork(): void {
    this.corks++;
  }

  uncork(): void {
    if (this.corks === 0) return;
    this.corks--;
    if (this.corks === 0 && this.corked) {
      this.reachSocket(this.corked);
      this.corked = '';
    }
  }

  write(chunk: string): boolean {
    if (this.corks > 0) this.corked += chunk;
    else this.reachSocket(chunk);
    return !this.congested;
  }

  end(chunk = ''): void {
    if (chunk) this.reachSocket(this.corked + chunk);
    this.corked = '';
    this.ended = true;
    this.emit('close');
  }

  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }

  /** From now on the client reads nothing: written bytes pile up. */
  stall(): void {
    this.congested = true;
  }

  /** The client read everything: the socket drains. */
  drain(): void {
    this.congested = false;
    this.unread = 0;
    this.emit('drain');
  }

  /** The client went away. */
  disconnect(): void {
    this.emit('close');
  }

  asResponse(): ServerResponse {
    return this as unknown as ServerResponse;
  }

  private reachSocket(text: string): void {
    this.flushes.push(text);
    if (this.congested) this.unread += Buffer.byteLength(text);
  }
}
