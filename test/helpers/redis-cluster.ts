import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  alive,
  askRedis as ask,
  killAll,
  onFreePort,
  spawnRedisServer,
  type RedisProcess,
} from './redis-process.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/** One redis-server of a test cluster. */
export type ClusterNodeProcess = RedisProcess;

/** A slot range and who serves it, as `CLUSTER SLOTS` says. */
interface SlotRange {
  from: number;
  to: number;
  master: number;
  replicas: number[];
}

/** What `killMaster` did. */
export interface Failover {
  /** Port of the master that was killed. */
  killed: number;
  /** Port of the replica that took its slots over. */
  promoted: number;
}

export interface RedisClusterOptions {
  /** @defaultValue 3 */
  masters?: number;
  /** @defaultValue 1 */
  replicasPerMaster?: number;
  /**
   * How long a node may be unreachable before the others count it as failed (and a replica takes
   * over): short, so that a failover drill takes seconds. @defaultValue 1000
   */
  nodeTimeoutMs?: number;
}

async function startNode(
  port: number,
  dir: string,
  nodeTimeoutMs: number,
): Promise<ClusterNodeProcess> {
  return spawnRedisServer(port, [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--daemonize',
    'no',
    '--logfile',
    '',
    '--dir',
    dir,
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    `nodes-${port}.conf`,
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    // Replicas sync at once (the default waits 5 s for more replicas to share the transfer).
    '--repl-diskless-sync-delay',
    '0',
    '--repl-ping-replica-period',
    '1',
    '--appendonly',
    'no',
    '--save',
    '',
  ]);
}

/**
 * A Redis Cluster of its own for a test: `masters` masters with `replicasPerMaster` replicas
 * each, every node a `redis-server` on a free port with its files in a temporary directory,
 * without persistence. A failover drill kills a master and waits for its replica to take over.
 */
export class RedisCluster {
  private closing: Promise<void> | undefined;
  /** Kills the nodes should the test process exit without closing the cluster. */
  private readonly killOnExit = () => {
    for (const node of this.nodes) if (alive(node)) node.child.kill('SIGKILL');
  };

  private constructor(
    readonly nodes: ClusterNodeProcess[],
    private readonly dir: string,
  ) {
    process.once('exit', this.killOnExit);
  }

  static async start({
    masters = 3,
    replicasPerMaster = 1,
    nodeTimeoutMs = 1000,
  }: RedisClusterOptions = {}): Promise<RedisCluster> {
    const dir = await mkdtemp(path.join(tmpdir(), 'triton-cluster-'));
    const count = masters * (1 + replicasPerMaster);
    const nodes: ClusterNodeProcess[] = [];
    const cluster = new RedisCluster(nodes, dir);
    try {
      while (nodes.length < count) {
        nodes.push(await onFreePort((port) => startNode(port, dir, nodeTimeoutMs)));
      }
      await run('redis-cli', [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ]);
      await cluster.waitUntilHealthy(masters * replicasPerMaster);
      return cluster;
    } catch (err) {
      await cluster.close();
      throw err;
    }
  }

  /** A URL naming one node, as REDIS_URL would. */
  get url(): string {
    const node = this.nodes.find(alive) ?? this.nodes[0];
    return `redis://127.0.0.1:${node?.port ?? 0}`;
  }

  /**
   * Every slot range and its master and replicas, as a live node sees them (`CLUSTER NODES`:
   * `CLUSTER SLOTS` leaves out replicas until their replication offset moves).
   */
  async slots(): Promise<SlotRange[]> {
    const live = this.nodes.find(alive);
    if (!live) throw new Error('no node is running');
    const text = await ask<string>(live.port, 'CLUSTER', 'NODES');
    const nodes = text
      .trim()
      .split('\n')
      .map((line) => {
        const [id = '', address = '', flags = '', masterId = '', , , , , ...slots] =
          line.split(' ');
        return {
          id,
          port: Number(address.split('@')[0]?.split(':').pop()),
          flags: flags.split(','),
          masterId,
          slots,
        };
      })
      .filter((n) => !n.flags.includes('fail') && !n.flags.includes('noaddr'));
    const ranges: SlotRange[] = [];
    for (const master of nodes.filter((n) => n.flags.includes('master'))) {
      const replicas = nodes.filter((n) => n.masterId === master.id).map((n) => n.port);
      for (const slots of master.slots) {
        if (slots.startsWith('[')) continue; // a slot being migrated
        const [from = '', to = from] = slots.split('-');
        ranges.push({ from: Number(from), to: Number(to), master: master.port, replicas });
      }
    }
    return ranges;
  }

  /** Port of the master serving `slot`. */
  async masterOf(slot: number): Promise<number> {
    const range = (await this.slots()).find((r) => r.from <= slot && slot <= r.to);
    if (!range) throw new Error(`no node serves slot ${slot}`);
    return range.master;
  }

  /**
   * SIGKILLs the master serving `slot`, as a crash would, and waits until one of its replicas
   * serves its slots and every surviving node says the cluster is ok.
   */
  async killMaster(slot: number): Promise<Failover> {
    const range = (await this.slots()).find((r) => r.from <= slot && slot <= r.to);
    if (!range) throw new Error(`no node serves slot ${slot}`);
    const master = this.nodes.find((n) => n.port === range.master);
    if (!master || range.replicas.length === 0) throw new Error(`slot ${slot} has no replica`);
    // A replica that is not in sync refuses to take over: wait until one is.
    await waitFor(`a replica of ${range.master} in sync`, async () => {
      for (const port of range.replicas) {
        const info = await ask<string>(port, 'INFO', 'replication');
        if (/master_link_status:up/.test(info)) return true;
      }
      return false;
    });
    const exited = new Promise<void>((resolve) => master.child.once('exit', () => resolve()));
    master.child.kill('SIGKILL');
    await exited;
    const promoted = await waitFor(
      `a replica to take over from ${range.master}`,
      async () => {
        const owner = await this.masterOf(slot).catch(() => undefined);
        return owner !== undefined && owner !== range.master && owner;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await this.waitUntilHealthy();
    return { killed: range.master, promoted };
  }

  /** Waits until every running node says `cluster_state:ok` and knows its replicas. */
  private async waitUntilHealthy(replicas?: number): Promise<void> {
    await waitFor(
      'the cluster to be ok on every node',
      async () => {
        for (const node of this.nodes.filter(alive)) {
          const info = await ask<string>(node.port, 'CLUSTER', 'INFO');
          if (!/cluster_state:ok/.test(info)) return false;
        }
        if (replicas !== undefined) {
          const known = (await this.slots()).reduce((n, r) => n + r.replicas.length, 0);
          if (known < replicas) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  }

  /** Kills every node and removes their files. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      process.off('exit', this.killOnExit);
      await killAll(this.nodes);
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.closing;
  }
}
