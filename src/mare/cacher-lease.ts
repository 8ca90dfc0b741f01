import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import type { RedisClient } from '../common/redis.js';

/** Extends the lease when this gateway still holds it. KEYS[1] lease, ARGV[1] holder, ARGV[2] ms. */
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

/** Gives the lease up when this gateway holds it. KEYS[1] lease, ARGV[1] holder. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

interface LeaseCommands {
  tritonExtendLease(key: string, holder: string, ms: number): Promise<number>;
  tritonReleaseLease(key: string, holder: string): Promise<number>;
}

/** Where the lease lives, how long it lasts, and whom to tell when this gateway gains or loses it. */
export interface CacherLeaseOptions {
  /** The Redis holding the results cache (and so the lease); its owner closes it. */
  redis: RedisClient;
  /** The lease's key. */
  key: string;
  logger: Logger;
  /** How long the lease lasts without renewal. @defaultValue 15000 */
  leaseMs?: number;
  /** How often the holder renews it and the others try to take it. @defaultValue 5000 */
  renewMs?: number;
  /** This gateway took the lease: start caching. */
  onAcquired: () => void;
  /** This gateway lost the lease (or gave it up): stop caching. */
  onLost: () => void;
}

/**
 * Who caches every job's result as it ends: one gateway of those sharing a results cache, so
 * that the others need not receive every job's events. A lease in Redis (`SET … NX PX`),
 * renewed by its holder every `renewMs` and taken by another gateway once its holder stops
 * renewing it (a crash: after `leaseMs`; a shutdown: at once). For a moment two gateways may
 * both cache: a result written twice is the same document.
 */
export class CacherLease {
  /** This gateway's name in the lease. */
  readonly holder = randomUUID();
  private held = false;
  /** When the lease, as last renewed, lapses (ms since the epoch). */
  private expiresAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly o: Required<CacherLeaseOptions>;
  private readonly commands: LeaseCommands;

  constructor({ leaseMs = 15_000, renewMs = 5000, ...options }: CacherLeaseOptions) {
    this.o = { leaseMs, renewMs, ...options };
    const { redis } = options;
    if (!('tritonExtendLease' in redis)) {
      redis.defineCommand('tritonExtendLease', { numberOfKeys: 1, lua: EXTEND });
      redis.defineCommand('tritonReleaseLease', { numberOfKeys: 1, lua: RELEASE });
    }
    const defined = redis as unknown as LeaseCommands;
    this.commands = {
      tritonExtendLease: defined.tritonExtendLease.bind(redis),
      tritonReleaseLease: defined.tritonReleaseLease.bind(redis),
    };
  }

  /** Whether this gateway holds the lease. */
  get isHolder(): boolean {
    return this.held;
  }

  /** Tries to take the lease now, then keeps renewing or trying every `renewMs`. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.renewMs);
    this.timer.unref();
  }

  /** Stops, giving the lease up so that another gateway takes it at once. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      await this.running;
      if (!this.held) return;
      this.lose();
      await this.commands.tritonReleaseLease(this.o.key, this.holder).catch(() => undefined);
    })();
    return this.closing;
  }

  /** One renewal or attempt; never two at once. */
  private tick(): Promise<void> {
    this.running ??= this.renewOrTake().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async renewOrTake(): Promise<void> {
    const { redis, key, leaseMs, logger } = this.o;
    const asked = Date.now();
    try {
      if (this.held) {
        if ((await this.commands.tritonExtendLease(key, this.holder, leaseMs)) === 1) {
          this.expiresAt = asked + leaseMs;
        } else {
          logger.warn('Another gateway took over caching job results');
          this.lose();
        }
      } else if ((await redis.set(key, this.holder, 'PX', leaseMs, 'NX')) === 'OK') {
        if (this.closing) return;
        this.expiresAt = asked + leaseMs;
        this.held = true;
        logger.info('This gateway caches job results (it holds the cacher lease)');
        this.o.onAcquired();
      }
    } catch (err) {
      // Redis does not answer: the lease lapses for everyone alike; stop once it has for us.
      if (this.held && Date.now() >= this.expiresAt) {
        logger.warn({ err }, 'The cacher lease lapsed');
        this.lose();
      }
    }
  }

  private lose(): void {
    if (!this.held) return;
    this.held = false;
    this.o.onLost();
  }
}
