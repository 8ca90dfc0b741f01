import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a chat-completions request carried, as far as the tests look. */
export interface ChatRequestBody {
  model: string;
  messages: { role: string; content: string }[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  temperature?: number;
  max_tokens?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** A streamed answer: each piece is one `chat.completion.chunk`. */
export interface StreamAnswer {
  type: 'stream';
  pieces: string[];
  /** Pause before each piece. @defaultValue 0 */
  delayMs?: number;
  /** Sent when the request asks for it (`stream_options.include_usage`). @defaultValue pieces-based */
  usage?: Usage;
  /** @defaultValue 'stop' */
  finishReason?: 'stop' | 'length';
  /** Destroy the connection once this many pieces are sent (a mid-stream disconnect). */
  disconnectAfter?: number;
  /** Send a line that is not JSON once this many pieces are sent. */
  malformedAfter?: number;
  /** Fall silent, connection open, once this many pieces are sent. */
  stallAfter?: number;
}

/** An error answer: a status, its JSON body and headers (Retry-After…). */
export interface StatusAnswer {
  type: 'status';
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** No answer: nothing at all, or the stream's headers and then silence. */
export interface HangAnswer {
  type: 'hang';
  headers: boolean;
}

export type Answer = StreamAnswer | StatusAnswer | HangAnswer;

/** One request as the server saw it. */
export interface RecordedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: ChatRequestBody;
  /** `performance.now()` when the request arrived and when its answer was complete or cut. */
  receivedAt: number;
  answeredAt: number | undefined;
  /** Usage the server reported in the answer, if it did. */
  usage: Usage | undefined;
  /** Whether the client closed the connection before the answer was complete. */
  closedByClient: boolean;
  /** Resolves once the exchange is over: answered, cut by the server or closed by the client. */
  closed: Promise<void>;
}

export interface OpenAiTestServer {
  /** Base URL, `http://127.0.0.1:PORT/v1`. */
  readonly url: string;
  readonly port: number;
  /** Every chat-completions request, in order of arrival. */
  readonly requests: RecordedRequest[];
  /** Queues answers for the next requests, in order. */
  answer(...answers: Answer[]): void;
  /** Resolves when `n` requests have arrived. */
  waitForRequests(n: number): Promise<RecordedRequest[]>;
  close(): Promise<void>;
}

/** A streamed answer carrying `text`, cut into pieces of at most `size` characters. */
export function streamOf(
  text: string,
  { size = 8, ...rest }: Omit<StreamAnswer, 'type' | 'pieces'> & { size?: number } = {},
): StreamAnswer {
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return { type: 'stream', pieces, ...rest };
}

export function statusAnswer(
  status: number,
  message = `status ${status}`,
  headers: Record<string, string> = {},
): StatusAnswer {
  return {
    type: 'status',
    status,
    body: { error: { message, type: 'test_error', code: null } },
    headers,
  };
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
};

/**
 * An OpenAI-compatible chat-completions server on a free port, speaking the real wire format
 * (`text/event-stream` of `chat.completion.chunk` objects, a usage chunk, `data: [DONE]`), that
 * answers each request as the test scripted it: streams fast or slow, error statuses, hangs,
 * empty or malformed answers, connections cut mid-stream. It records every request and whether
 * the client closed its connection before the answer was complete.
 */
export async function startOpenAiTestServer(): Promise<OpenAiTestServer> {
  const queue: Answer[] = [];
  const requests: RecordedRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let chunkId = 0;

  const later = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (piece: string) => (raw += piece));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
        return;
      }
      let resolveClosed = () => {};
      const record: RecordedRequest = {
        path: req.url,
        headers: req.headers,
        body: JSON.parse(raw) as ChatRequestBody,
        receivedAt: performance.now(),
        answeredAt: undefined,
        usage: undefined,
        closedByClient: false,
        closed: new Promise<void>((resolve) => (resolveClosed = resolve)),
      };
      let cutByServer = false;
      res.on('close', () => {
        record.closedByClient = !res.writableFinished && !cutByServer;
        record.answeredAt ??= performance.now();
        resolveClosed();
      });
      requests.push(record);
      for (const waiter of waiters.filter((w) => requests.length >= w.n)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
      const answer = queue.shift() ?? statusAnswer(500, 'no answer scripted for this request');
      void respond(answer, record, res, () => (cutByServer = true));
    });
  });

  async function respond(
    answer: Answer,
    record: RecordedRequest,
    res: ServerResponse,
    markCut: () => void,
  ): Promise<void> {
    if (answer.type === 'status') {
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body ?? {}));
      return;
    }
    if (answer.type === 'hang') {
      if (answer.headers) {
        res.writeHead(200, SSE_HEADERS);
        res.flushHeaders();
      }
      return;
    }
    const { body } = record;
    const id = `chatcmpl-test-${++chunkId}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (choices: unknown[], extra: object = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices, ...extra })}\n\n`;
    const write = (data: string) =>
      new Promise<void>((resolve) => {
        if (res.destroyed) return resolve();
        res.write(data, () => resolve());
      });

    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    // Index `i` is the moment after `i` pieces were sent, the end included.
    for (let i = 0; i <= answer.pieces.length; i++) {
      if (answer.disconnectAfter === i) {
        markCut();
        res.socket?.destroy();
        return;
      }
      if (answer.malformedAfter === i) {
        await write('data: {"id": "chatcmpl-broken", "choices": [{"index": 0, "delta": {"cont\n\n');
        await write('data: [DONE]\n\n');
        res.end();
        return;
      }
      if (answer.stallAfter === i) return;
      const piece = answer.pieces[i];
      if (piece === undefined) break;
      if (answer.delayMs) await later(answer.delayMs);
      if (res.destroyed) return;
      const delta = i === 0 ? { role: 'assistant', content: piece } : { content: piece };
      await write(chunk([{ index: 0, delta, finish_reason: null }]));
    }
    if (res.destroyed) return;
    await write(chunk([{ index: 0, delta: {}, finish_reason: answer.finishReason ?? 'stop' }]));
    if (body.stream_options?.include_usage) {
      const usage = answer.usage ?? {
        prompt_tokens: Math.ceil(JSON.stringify(body.messages).length / 4),
        completion_tokens: answer.pieces.length,
      };
      record.usage = usage;
      await write(
        chunk([], {
          usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
        }),
      );
    }
    await write('data: [DONE]\n\n');
    record.answeredAt = performance.now();
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    answer(...answers) {
      queue.push(...answers);
    },
    async waitForRequests(n) {
      if (requests.length < n) {
        await new Promise<void>((resolve) => waiters.push({ n, resolve }));
      }
      return requests.slice(0, n);
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
