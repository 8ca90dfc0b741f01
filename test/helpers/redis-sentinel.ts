import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  alive,
  askRedis as ask,
  killAll,
  onFreePort,
  spawnRedisServer,
  type RedisProcess,
} from './redis-process.js';
import { waitFor } from './wait.js';

/** One redis-server of a Sentinel setup: a data node or a sentinel. */
export type SentinelSetupProcess = RedisProcess;

/** What {@link RedisSentinel.killMaster} did. */
export interface SentinelFailover {
  /** Port of the master that was killed. */
  killed: number;
  /** Port of the replica the sentinels made master. */
  promoted: number;
}

export interface RedisSentinelOptions {
  /** @defaultValue 1 */
  replicas?: number;
  /** @defaultValue 3 */
  sentinels?: number;
  /**
   * How long the master may not answer before the sentinels count it as down and fail over:
   * short, so that a drill takes seconds. @defaultValue 1000
   */
  downAfterMs?: number;
}

/** The name the sentinels monitor the master under. */
export const SENTINEL_MASTER_NAME = 'triton-test';

/**
 * A Redis Sentinel setup of its own for a test: a master, its replicas and sentinels
 * (quorum: a majority of them), every one a `redis-server` on a free port with its files in a
 * temporary directory, without persistence. Its URL is the `redis+sentinel://` form the
 * services read; a failover drill kills the master and waits for the sentinels to promote a
 * replica.
 */
export class RedisSentinel {
  private closing: Promise<void> | undefined;
  /** Kills the servers should the test process exit without closing the setup. */
  private readonly killOnExit = () => {
    for (const node of this.all()) if (alive(node)) node.child.kill('SIGKILL');
  };

  private constructor(
    readonly dataNodes: SentinelSetupProcess[],
    readonly sentinels: SentinelSetupProcess[],
    private readonly dir: string,
  ) {
    process.once('exit', this.killOnExit);
  }

  static async start({
    replicas = 1,
    sentinels = 3,
    downAfterMs = 1000,
  }: RedisSentinelOptions = {}): Promise<RedisSentinel> {
    const dir = await mkdtemp(path.join(tmpdir(), 'triton-sentinel-'));
    const setup = new RedisSentinel([], [], dir);
    try {
      const dataArgs = (port: number) => [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--dbfilename',
        `dump-${port}.rdb`,
        '--save',
        '',
        '--appendonly',
        'no',
        // Replicas sync at once (the default waits 5 s for more replicas to share the transfer).
        '--repl-diskless-sync-delay',
        '0',
        '--repl-ping-replica-period',
        '1',
      ];
      const master = await onFreePort((port) => spawnRedisServer(port, dataArgs(port)));
      setup.dataNodes.push(master);
      for (let i = 0; i < replicas; i++) {
        setup.dataNodes.push(
          await onFreePort((port) =>
            spawnRedisServer(port, [
              ...dataArgs(port),
              '--replicaof',
              '127.0.0.1',
              String(master.port),
            ]),
          ),
        );
      }
      await waitFor('the replicas to be in sync', async () => {
        const info = await ask<string>(master.port, 'INFO', 'replication');
        return (info.match(/^slave\d+:.*state=online/gm) ?? []).length >= replicas;
      });
      const quorum = Math.floor(sentinels / 2) + 1;
      for (let i = 0; i < sentinels; i++) {
        setup.sentinels.push(
          await onFreePort(async (port) => {
            // A sentinel rewrites its configuration file: each has one of its own.
            const file = path.join(dir, `sentinel-${port}.conf`);
            await writeFile(
              file,
              [
                `port ${port}`,
                'bind 127.0.0.1',
                `dir ${dir}`,
                `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${master.port} ${quorum}`,
                `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} ${downAfterMs}`,
                `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 10000`,
                `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
                '',
              ].join('\n'),
            );
            // A sentinel says it monitors its master rather than that it is ready.
            return spawnRedisServer(port, [file, '--sentinel'], /\+monitor master/);
          }),
        );
      }
      await waitFor('every sentinel to know the replicas and the other sentinels', async () => {
        for (const sentinel of setup.sentinels) {
          const [fields] = await ask<string[][]>(sentinel.port, 'SENTINEL', 'MASTERS');
          const info = Object.fromEntries(
            (fields ?? []).flatMap((v, i, a) => (i % 2 ? [] : [[v, a[i + 1]]])),
          ) as Record<string, string>;
          if (Number(info['num-slaves']) < replicas) return false;
          if (Number(info['num-other-sentinels']) < sentinels - 1) return false;
        }
        return true;
      });
      return setup;
    } catch (err) {
      await setup.close();
      throw err;
    }
  }

  /** The URL the services are given: every sentinel, and the master's name. */
  get url(): string {
    const hosts = this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
    return `redis+sentinel://${hosts}/${SENTINEL_MASTER_NAME}`;
  }

  /** Port of the master, as a live sentinel names it. */
  async masterPort(): Promise<number> {
    const sentinel = this.sentinels.find(alive);
    if (!sentinel) throw new Error('no sentinel is running');
    const [, port] = await ask<[string, string]>(
      sentinel.port,
      'SENTINEL',
      'GET-MASTER-ADDR-BY-NAME',
      SENTINEL_MASTER_NAME,
    );
    return Number(port);
  }

  /**
   * SIGKILLs the master, as a crash would, and waits until the sentinels name a replica as the
   * new master and that replica says it is one.
   */
  async killMaster(): Promise<SentinelFailover> {
    const killed = await this.masterPort();
    const master = this.dataNodes.find((n) => n.port === killed);
    if (!master) throw new Error(`the master ${killed} is not one of this setup's`);
    await waitFor('a replica in sync', async () => {
      const info = await ask<string>(killed, 'INFO', 'replication');
      return /^slave\d+:.*state=online/m.test(info);
    });
    const exited = new Promise<void>((resolve) => master.child.once('exit', () => resolve()));
    master.child.kill('SIGKILL');
    await exited;
    const promoted = await waitFor(
      `the sentinels to promote a replica of ${killed}`,
      async () => {
        const port = await this.masterPort().catch(() => killed);
        if (port === killed) return false;
        const role = await ask<[string]>(port, 'ROLE').catch(() => ['']);
        return role[0] === 'master' && port;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    return { killed, promoted };
  }

  private all(): SentinelSetupProcess[] {
    return [...this.dataNodes, ...this.sentinels];
  }

  /** Kills every server and removes their files. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      process.off('exit', this.killOnExit);
      await killAll(this.all());
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.closing;
  }
}
