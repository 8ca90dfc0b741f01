/**
 * Entry of every server process the benchmark starts: `server-child.ts <kind> <options JSON>`.
 * One server per process, so that its RSS and CPU time are its own. Answers `info` with the
 * URLs it serves, `memory`/`cpu` with its figures, and `stop` by closing and exiting.
 */
import { loadConfig } from '../../src/common/config.js';
import { createLogger } from '../../src/common/logger.js';
import { startMare } from '../../src/mare/mare-service.js';
import { startTriton } from '../../src/triton/triton-service.js';
import { startBareLookupServer } from '../baselines/bare-lookup-server.js';
import { startBareRelay, type BareRoute } from '../baselines/bare-relay.js';
import { startBareSseServer } from '../baselines/bare-sse-server.js';
import { startRawBullmqWorker, type RawBullmqWorker } from '../baselines/raw-bullmq-worker.js';
import { processStatsHandlers } from './bench-child.js';
import { serveIpc, type IpcHandler } from './ipc.js';
import { NoopTemplateGenerator } from './noop-template-generator.js';

/** What each kind of server takes (as JSON on the command line). */
export type ServerSpec =
  | { kind: 'mare'; env: Record<string, string> }
  | {
      kind: 'system';
      env: Record<string, string>;
      /** Templates per job of a no-op generator; absent: the built-in generator. */
      noopTemplates?: number;
      /** Start mare-api too. */
      mare: boolean;
    }
  | {
      kind: 'bare-relay';
      redisUrl: string;
      channel: string;
      route: BareRoute;
      heartbeatMs: number;
    }
  | { kind: 'bare-sse'; heartbeatMs: number }
  | { kind: 'bare-lookup'; redisUrl: string; keyPrefix: string }
  | {
      kind: 'raw-bullmq';
      redisUrl: string;
      queueName: string;
      prefix: string;
      concurrency: number;
    };

/** What `info` answers: the base URLs of what runs in the child. */
export interface ServerInfo {
  url?: string;
  tritonUrl?: string;
}

async function start(
  spec: ServerSpec,
): Promise<{ info: ServerInfo; close: () => Promise<void>; extra?: Record<string, IpcHandler> }> {
  switch (spec.kind) {
    case 'mare': {
      const config = loadConfig(spec.env);
      const mare = await startMare({
        common: config.common,
        mare: config.mare,
        logger: createLogger(config.common),
        port: 0,
      });
      return { info: { url: mare.url }, close: () => mare.close() };
    }
    case 'system': {
      const config = loadConfig(spec.env);
      const logger = createLogger(config.common);
      const triton = await startTriton({
        common: config.common,
        triton: config.triton,
        logger,
        api: true,
        worker: true,
        port: 0,
        ...(spec.noopTemplates ? { generator: new NoopTemplateGenerator(spec.noopTemplates) } : {}),
      });
      const tritonUrl = triton.url ?? '';
      const mare = spec.mare
        ? await startMare({
            common: config.common,
            mare: { ...config.mare, tritonApiUrl: tritonUrl },
            logger,
            port: 0,
          })
        : undefined;
      return {
        info: { url: mare?.url, tritonUrl },
        close: async () => {
          await mare?.close();
          await triton.close();
        },
      };
    }
    case 'bare-relay': {
      const relay = await startBareRelay(spec);
      return { info: { url: relay.url }, close: () => relay.close() };
    }
    case 'bare-sse': {
      const server = await startBareSseServer(spec);
      return { info: { url: server.url }, close: () => server.close() };
    }
    case 'bare-lookup': {
      const server = await startBareLookupServer(spec);
      return { info: { url: server.url }, close: () => server.close() };
    }
    case 'raw-bullmq': {
      const worker: RawBullmqWorker = await startRawBullmqWorker(spec);
      return {
        info: {},
        close: () => worker.close(),
        extra: {
          waitCompleted: (request) =>
            worker.waitForCompleted(Number(request.count), Number(request.timeoutMs)),
        },
      };
    }
  }
}

const spec = JSON.parse(process.argv[2] ?? '{}') as ServerSpec;
let close: (() => Promise<void>) | undefined;
let info: ServerInfo | undefined;
let failure: string | undefined;
const started = start(spec).then(
  (s) => {
    close = s.close;
    info = s.info;
    return s.extra ?? {};
  },
  (err: unknown): Record<string, IpcHandler> => {
    failure = err instanceof Error ? err.message : String(err);
    return {};
  },
);

serveIpc(
  {
    ...processStatsHandlers,
    info: async () => {
      await started;
      if (failure) throw new Error(`could not start ${spec.kind}: ${failure}`);
      return info;
    },
    call: async (request) => {
      const extra = await started;
      const handler = extra[String(request.name)];
      if (!handler) throw new Error(`${spec.kind} has no ${String(request.name)}`);
      return handler(request);
    },
  },
  async () => {
    await started;
    await close?.();
  },
);
