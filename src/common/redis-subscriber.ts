import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type Cluster } from 'ioredis';
import type { Logger } from './logger.js';
import {
  closeRedis,
  createRedis,
  createRedisCluster,
  nodeOptionsOf,
  waitForRedis,
  type RedisTarget,
} from './redis.js';
import { RepeatedErrorLog } from './repeated-error-log.js';

/**
 * How a channel is published: `classic` (PUBLISH: on a cluster every node hears it) or
 * `sharded` (on a cluster SPUBLISH: only the master of the channel's slot and its replicas do;
 * on a single server it is classic Pub/Sub all the same).
 */
export type ChannelKind = 'classic' | 'sharded';

/** What a {@link RedisSubscriber} reports to. */
export interface RedisSubscriberOptions {
  target: RedisTarget;
  /** Shown in logs and as the connections' names. */
  name: string;
  logger: Logger;
  /** Every message on a held channel (and, briefly, on one just released). */
  onMessage: (channel: string, message: string) => void;
  /**
   * The subscriptions of one kind were lost (a dropped connection, a failed master) and are
   * confirmed again: messages published meanwhile never arrived. Called once per loss.
   */
  onRestored?: (kind: ChannelKind) => void;
}

/** How the subscriber reaches Redis: one connection on a single server, several on a cluster. */
interface Transport {
  /** Resolves once a first connection is ready (rejects after a timeout). */
  ready(): Promise<void>;
  subscribe(channel: string, kind: ChannelKind): Promise<void>;
  unsubscribe(channel: string, kind: ChannelKind): Promise<void>;
  close(): Promise<void>;
}

/** A channel someone holds, and what Redis has of it. */
interface Hold {
  kind: ChannelKind;
  /** Holders; the channel is subscribed while there is any. */
  count: number;
  /** True once a subscription was sent, until it is dropped: an unsubscription is then due. */
  on: boolean;
  /** True while Redis's confirmation of the subscription holds (no loss since). */
  confirmed: boolean;
  /** The running change towards what `count` asks for. */
  syncing: Promise<void> | undefined;
}

const backoff = (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 5), 1000);

/**
 * A process's Pub/Sub subscriptions, on a single server or a cluster, held by reference count:
 * the first holder of a channel subscribes (the promise resolves once Redis confirms it, so a
 * history read that follows misses nothing), the last one to release it unsubscribes.
 * Subscribing and unsubscribing are serialised per channel, so a quick release-and-hold is
 * never lost, and a subscription that fails is tried again while it is held.
 *
 * On a cluster, sharded channels are subscribed with SSUBSCRIBE on their slot's master
 * (ioredis opens one connection per master that owns a held channel), and classic ones with
 * SUBSCRIBE on one connection to any node, which moves to another node when its own goes away.
 * Whenever a subscription may have missed messages, it is confirmed again and `onRestored`
 * says so: the caller then reads from history what was missed.
 */
export class RedisSubscriber {
  private readonly holds = new Map<string, Hold>();
  private readonly transport: Transport;
  /** Losses so far, per kind: a confirmation sent before the latest one no longer counts. */
  private readonly losses: Record<ChannelKind, number> = { classic: 0, sharded: 0 };
  /** Channels with at least one holder, per kind. */
  private readonly held: Record<ChannelKind, number> = { classic: 0, sharded: 0 };
  private closing: Promise<void> | undefined;
  private readonly errors: RepeatedErrorLog;

  constructor(private readonly o: RedisSubscriberOptions) {
    this.errors = new RepeatedErrorLog(o.logger);
    const lost = (kind: ChannelKind) => this.reconfirm(kind);
    this.transport = o.target.cluster
      ? new ClusterTransport(o, lost)
      : new SingleServerTransport(o, lost);
  }

  /** Resolves once Redis answers, or rejects with a clear message after a while. */
  ready(): Promise<void> {
    return this.transport.ready();
  }

  /** Channels of a kind with at least one holder. */
  heldCount(kind: ChannelKind): number {
    return this.held[kind];
  }

  /**
   * Holds a channel; resolves once Redis confirmed the subscription. While the channel is held
   * a failed subscription is tried again; the promise then resolves on success.
   */
  hold(channel: string, kind: ChannelKind): Promise<void> {
    let hold = this.holds.get(channel);
    if (!hold) {
      hold = { kind, count: 0, on: false, confirmed: false, syncing: undefined };
      this.holds.set(channel, hold);
    }
    if (hold.count++ === 0) this.held[hold.kind]++;
    return this.sync(channel, hold);
  }

  /** Lets a channel go; the last holder's release unsubscribes. */
  release(channel: string): void {
    const hold = this.holds.get(channel);
    if (!hold || hold.count === 0) return;
    hold.count--;
    if (hold.count > 0) return;
    this.held[hold.kind]--;
    this.sync(channel, hold).catch(() => undefined);
  }

  /** Closes every connection. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.transport.close();
    return this.closing;
  }

  /** Brings a channel's subscription in line with its holders, one change at a time. */
  private sync(channel: string, hold: Hold): Promise<void> {
    const due = () => (hold.count > 0 ? !(hold.on && hold.confirmed) : hold.on);
    hold.syncing ??= (async () => {
      try {
        for (let attempt = 0; due();) {
          if (this.closing) throw new Error('The subscriber is closed');
          if (hold.count > 0) {
            const losses = this.losses[hold.kind];
            hold.on = true;
            try {
              await this.transport.subscribe(channel, hold.kind);
              // Confirmed by a connection that has not been lost since.
              hold.confirmed = losses === this.losses[hold.kind];
              attempt = 0;
            } catch (err) {
              // Every held channel fails alike while Redis is away: one line says it for all.
              if (attempt === 0) this.errors.warn(err, 'Subscribing failed; retrying', { channel });
              await sleep(backoff(attempt++));
            }
          } else {
            // An unsubscription fails only with its connection, which takes the subscription along.
            await this.transport.unsubscribe(channel, hold.kind).catch(() => undefined);
            hold.on = false;
            hold.confirmed = false;
          }
        }
      } finally {
        hold.syncing = undefined;
        if (hold.count === 0 && !hold.on) this.holds.delete(channel);
      }
    })();
    return hold.syncing;
  }

  /**
   * After a loss: subscribes again to every held channel of the kind, until Redis confirms them
   * all, then reports it (once, for the latest loss, should another come meanwhile).
   */
  private reconfirm(kind: ChannelKind): void {
    if (this.closing) return;
    const loss = ++this.losses[kind];
    const pending: Promise<void>[] = [];
    for (const [channel, hold] of this.holds) {
      if (hold.kind !== kind || !hold.on) continue;
      hold.confirmed = false;
      pending.push(this.sync(channel, hold));
    }
    if (pending.length === 0) return;
    void Promise.allSettled(pending).then(() => {
      if (this.closing || loss !== this.losses[kind]) return;
      this.o.logger.info({ kind, channels: pending.length }, `Subscriptions restored (${kind})`);
      this.o.onRestored?.(kind);
    });
  }
}

/** A single server: one connection subscribes to every channel, sharded ones included. */
class SingleServerTransport implements Transport {
  private readonly redis: Redis;
  private readonly url: string;
  private readyBefore = false;

  constructor(
    { target, name, logger, onMessage }: RedisSubscriberOptions,
    lost: (kind: ChannelKind) => void,
  ) {
    this.url = target.url;
    this.redis = createRedis(target.url, { name, logger, maxRetriesPerRequest: null });
    this.redis.on('message', onMessage);
    this.redis.on('ready', () => {
      if (this.readyBefore) {
        lost('classic');
        lost('sharded');
      }
      this.readyBefore = true;
    });
  }

  ready(): Promise<void> {
    return waitForRedis(this.redis, this.url);
  }

  async subscribe(channel: string): Promise<void> {
    await this.redis.subscribe(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.redis.unsubscribe(channel);
  }

  close(): Promise<void> {
    return closeRedis(this.redis);
  }
}

/**
 * A cluster: sharded channels through ioredis's sharded subscribers (one connection per master
 * owning a held channel, moved to the new master of a slot after a failover), classic ones
 * through one connection to any node.
 */
class ClusterTransport implements Transport {
  private readonly cluster: Cluster;
  private readonly classic: AnyNodeSubscriber;
  private readonly url: string;

  constructor(
    { target, name, logger, onMessage }: RedisSubscriberOptions,
    lost: (kind: ChannelKind) => void,
  ) {
    this.url = target.url;
    this.cluster = createRedisCluster(target.url, {
      name,
      logger,
      maxRetriesPerRequest: null,
      sharded: true,
    });
    this.cluster.on('smessage', onMessage);
    // ioredis resubscribes by itself once it has a connection to each slot's master again, but
    // without saying when that is confirmed: subscribing again does, and tells the caller. Its
    // subscribers are also reset when nothing was lost (a replica shows up in the slot map):
    // only a connection that went away, or a subscriber replaced, counts as a loss.
    let dropped = false;
    const drop = () => (dropped = true);
    this.cluster.on('-node', drop);
    this.cluster.on('-subscriber', drop);
    this.cluster.on('subscribersReady', () => {
      if (!dropped) return;
      dropped = false;
      lost('sharded');
    });
    const start = nodeOptionsOf(target.url);
    this.classic = new AnyNodeSubscriber({
      name,
      logger,
      nodes: () => {
        const known = this.cluster
          .nodes('all')
          .map((node) => ({ host: String(node.options.host), port: Number(node.options.port) }));
        return known.length > 0 ? known : [{ host: start.host, port: start.port }];
      },
      onMessage,
      onLost: () => lost('classic'),
      url: target.url,
    });
  }

  ready(): Promise<void> {
    return waitForRedis(this.cluster, this.url);
  }

  async subscribe(channel: string, kind: ChannelKind): Promise<void> {
    if (kind === 'sharded') await this.cluster.ssubscribe(channel);
    else await this.classic.subscribe(channel);
  }

  async unsubscribe(channel: string, kind: ChannelKind): Promise<void> {
    if (kind === 'sharded') await this.cluster.sunsubscribe(channel);
    else await this.classic.unsubscribe(channel);
  }

  async close(): Promise<void> {
    await this.classic.close();
    await closeRedis(this.cluster);
  }
}

/**
 * Classic Pub/Sub on a cluster: every node hears every PUBLISH, so one connection to any node
 * will do. When that node goes away the connection moves to another (the caller subscribes
 * again on it: `onLost`).
 */
class AnyNodeSubscriber {
  private current: Redis | undefined;
  private connecting: Promise<Redis> | undefined;
  private closed = false;

  constructor(
    private readonly o: {
      name: string;
      logger: Logger;
      url: string;
      /** The cluster's nodes as last known. */
      nodes: () => Array<{ host: string; port: number }>;
      onMessage: (channel: string, message: string) => void;
      onLost: () => void;
    },
  ) {}

  async subscribe(channel: string): Promise<void> {
    const redis = await this.connection();
    await redis.subscribe(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    const redis = this.current;
    if (redis?.status === 'ready') await redis.unsubscribe(channel);
  }

  async close(): Promise<void> {
    this.closed = true;
    const redis = this.current;
    this.current = undefined;
    if (redis) await closeRedis(redis);
  }

  private connection(): Promise<Redis> {
    if (this.current?.status === 'ready') return Promise.resolve(this.current);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Tries the known nodes in random order until one answers. */
  private async connect(): Promise<Redis> {
    const { host: _host, port: _port, db: _db, ...auth } = nodeOptionsOf(this.o.url);
    for (let attempt = 0; ; attempt++) {
      const nodes = this.o.nodes().sort(() => Math.random() - 0.5);
      for (const node of nodes) {
        if (this.closed) throw new Error('The subscriber is closed');
        const redis = new Redis({
          ...auth,
          ...node,
          connectionName: this.o.name,
          lazyConnect: true,
          // Reconnecting is this class's work: to whichever node answers.
          retryStrategy: () => null,
          maxRetriesPerRequest: 0,
          // A node that does not answer is passed over quickly for the next one.
          connectTimeout: 2000,
        });
        redis.on('error', () => undefined);
        try {
          await redis.connect();
        } catch {
          redis.disconnect();
          continue;
        }
        redis.on('message', this.o.onMessage);
        redis.once('end', () => {
          if (this.current !== redis) return;
          this.current = undefined;
          if (!this.closed) {
            this.o.logger.warn(
              { redis: this.o.name, node: `${node.host}:${node.port}` },
              'Lost the node carrying classic subscriptions; moving to another',
            );
            this.o.onLost();
          }
        });
        this.current = redis;
        return redis;
      }
      await sleep(backoff(attempt));
    }
  }
}
