import { randomBytes, randomUUID } from 'node:crypto';
import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { closeRedis, createRedisCluster, detectRedis } from '../../src/common/redis.js';
import {
  createKeyspace,
  decodeEvent,
  historyEntryField,
  type JobEventDraft,
  type Keyspace,
} from '../../src/contract/index.js';
import { EventPublisher } from '../../src/triton/events/event-publisher.js';
import { clusterSlot } from '../helpers/cluster-slot.js';
import { RedisCluster } from '../helpers/redis-cluster.js';
import { waitFor } from '../helpers/wait.js';

/** Publishing on a real Redis Cluster: two steps, each on its own slot, each resent until answered. */

const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
let cluster: RedisCluster;
let redis: Cluster;
const closers: Array<() => unknown> = [];

beforeAll(async () => {
  cluster = await RedisCluster.start();
  redis = createRedisCluster(cluster.url, { name: 'test', logger, maxRetriesPerRequest: null });
});

afterAll(async () => {
  for (const close of closers.splice(0)) await close();
  if (redis) await closeRedis(redis);
  await cluster?.close();
});

function namespace(): Keyspace {
  return createKeyspace(`test-${randomBytes(4).toString('hex')}:`);
}

const CLIENT_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

function started(jobId: string): JobEventDraft {
  const now = new Date().toISOString();
  return {
    event_type: 'job:started',
    timestamp: now,
    job_id: jobId,
    client_id: CLIENT_ID,
    status: 'running',
    started_at: now,
  };
}

/** A job id whose channel hashes to a slot served by `port`. */
async function jobOnMaster(keys: Keyspace, port: number): Promise<string> {
  const ranges = (await cluster.slots()).filter((r) => r.master === port);
  for (;;) {
    const id = randomUUID();
    const slot = clusterSlot(keys.jobChannel(id));
    if (ranges.some((r) => r.from <= slot && slot <= r.to)) return id;
  }
}

/** A plain `SUBSCRIBE` on one node: classic Pub/Sub reaches every node of a cluster. */
async function subscribeOn(port: number, channel: string): Promise<string[]> {
  const sub = new Redis({ host: '127.0.0.1', port });
  // The node may be the master a test kills.
  sub.on('error', () => undefined);
  closers.push(() => sub.disconnect());
  const received: string[] = [];
  sub.on('message', (_channel: string, message: string) => received.push(message));
  await sub.subscribe(channel);
  return received;
}

/** `SSUBSCRIBE` through a cluster client: the job's channel lives on its slot's master. */
async function ssubscribe(channel: string): Promise<string[]> {
  const sub = createRedisCluster(cluster.url, { name: 'sub', logger, sharded: true });
  closers.push(() => sub.disconnect());
  const received: string[] = [];
  sub.on('smessage', (_channel: string, message: string) => received.push(message));
  await sub.ssubscribe(channel);
  return received;
}

describe('EventPublisher on a Redis Cluster', () => {
  it('recognises a cluster node from its URL, and refuses a database other than 0', async () => {
    expect(await detectRedis(cluster.url)).toEqual({ url: cluster.url, cluster: true });
    await expect(detectRedis(`${cluster.url}/2`)).rejects.toThrow(/only database 0/);
  });

  it("writes the job's keys on its channel's slot and the global history on its own, SPUBLISHes on the job's channel and PUBLISHes on the all-jobs channel to every node", async () => {
    const keys = namespace();
    const job = randomUUID();
    const onNodes = await Promise.all(
      cluster.nodes.map((n) => subscribeOn(n.port, keys.allJobsChannel)),
    );
    const sharded = await ssubscribe(keys.jobChannel(job));
    const p = new EventPublisher({ redis, keyspace: keys, logger });
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await p.publish(started(job)));
    expect(results.map((r) => r.seq)).toEqual([1, 2, 3]);

    const jobStream = await redis.xrange(keys.jobHistoryKey(job), '-', '+');
    expect(jobStream.map(([id]) => id)).toEqual(['0-1', '0-2', '0-3']);
    // No global position in the job's history: it is written before the global step.
    expect(jobStream.every(([, fields]) => historyEntryField(fields, 'g') === undefined)).toBe(
      true,
    );
    const globalStream = await redis.xrange(keys.globalHistoryKey, '-', '+');
    expect(globalStream.map(([, f]) => historyEntryField(f, 'e'))).toEqual(
      jobStream.map(([, f]) => historyEntryField(f, 'e')),
    );

    await waitFor('the job channel’s messages', () => sharded.length >= 3);
    expect(sharded).toEqual(jobStream.map(([, f]) => historyEntryField(f, 'e')));
    for (const received of onNodes) {
      await waitFor('the all-jobs messages on every node', () => received.length >= 3);
      expect(received.map((m) => decodeEvent(m).stream_id)).toEqual(globalStream.map(([id]) => id));
    }
  });

  it('turns a resent step into a no-op that answers as the first call did', async () => {
    const keys = namespace();
    const job = randomUUID();
    new EventPublisher({ redis, keyspace: keys, logger });
    const commands = redis as unknown as {
      tritonPublishJob: (...args: unknown[]) => Promise<[number, string]>;
      tritonPublishGlobal: (...args: unknown[]) => Promise<[number, string]>;
    };
    const json = '{"event_type":"job:queued"}';
    const jobStep = () =>
      commands.tritonPublishJob(
        keys.jobSeqKey(job),
        keys.jobHistoryKey(job),
        keys.publishReceiptKey(job, 'token'),
        keys.jobDraftKey(job),
        'job',
        json,
        keys.jobChannel(job),
        60,
        100,
        0,
        60,
        '',
        0,
        '',
        '',
      );
    const globalStep = () =>
      commands.tritonPublishGlobal(
        keys.globalHistoryKey,
        keys.globalReceiptKey('token'),
        'global',
        json,
        keys.allJobsChannel,
        100,
        60,
        1,
      );
    expect(await jobStep()).toEqual([1, '']);
    expect(await jobStep()).toEqual([1, '']);
    const [seq, gid] = await globalStep();
    expect(await globalStep()).toEqual([seq, gid]);
    expect(await redis.xlen(keys.jobHistoryKey(job))).toBe(1);
    expect(await redis.xlen(keys.globalHistoryKey)).toBe(1);
  });

  it('keeps publishing through the failover of the master holding both steps: seq only grows, no event twice', async () => {
    const keys = namespace();
    const globalSlot = clusterSlot(keys.globalHistoryKey);
    const master = await cluster.masterOf(globalSlot);
    const job = await jobOnMaster(keys, master);
    const p = new EventPublisher({ redis, keyspace: keys, logger });
    const seqs: number[] = [];
    let stop = false;
    const publishing = (async () => {
      while (!stop) seqs.push((await p.publish(started(job))).seq);
    })();
    await waitFor('a few events before the failover', () => seqs.length >= 20);
    const failover = await cluster.killMaster(globalSlot);
    expect(failover.promoted).not.toBe(master);
    const before = seqs.length;
    await waitFor('events after the failover', () => seqs.length >= before + 20, {
      timeoutMs: 20_000,
    });
    stop = true;
    await publishing;

    // Replication is asynchronous: an event the dead master answered but had not yet passed on
    // may be missing, but seq never repeats nor goes back, in history as in answers.
    const strictlyIncreasing = (list: number[]) =>
      list.every((s, i) => i === 0 || s > list[i - 1]!);
    expect(strictlyIncreasing(seqs)).toBe(true);
    const jobSeqs = (await redis.xrange(keys.jobHistoryKey(job), '-', '+')).map(
      ([, f]) => decodeEvent(historyEntryField(f, 'e') ?? '').seq,
    );
    expect(strictlyIncreasing(jobSeqs)).toBe(true);
    expect(jobSeqs.at(-1)).toBe(seqs.at(-1));
    const globalSeqs = (await redis.xrange(keys.globalHistoryKey, '-', '+')).map(
      ([, f]) => decodeEvent(historyEntryField(f, 'e') ?? '').seq,
    );
    expect(strictlyIncreasing(globalSeqs)).toBe(true);
    expect(globalSeqs.at(-1)).toBe(seqs.at(-1));
  }, 60_000);
});
