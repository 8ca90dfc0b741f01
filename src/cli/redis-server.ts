import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

/** How {@link RedisServer.start} runs redis-server. */
export interface RedisServerOptions {
  /** Port it listens on. */
  port: number;
  /** Where the AOF and RDB files go; `undefined` runs without persistence (tests). */
  dir?: string;
  /** @defaultValue 127.0.0.1 */
  bind?: string;
  /** AOF fsync policy when `dir` is set. @defaultValue everysec */
  appendfsync?: 'always' | 'everysec';
  /** Milliseconds to wait for "Ready to accept connections". @defaultValue 10000 */
  startTimeoutMs?: number;
}

/** redis-server could not be started; the message says how to fix it. */
export class RedisServerError extends Error {
  override readonly name = 'RedisServerError';
}

/** What to tell someone without redis-server: how to install it, or how to name another Redis. */
export const REDIS_INSTALL_HINT =
  'Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`, macOS: `brew install redis`) or set REDIS_URL to a running Redis.';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A `redis-server` child process on loopback. With a `dir` it keeps data there with production
 * settings (AOF on, `save 60 1000`) and replaces a server that an earlier,
 * killed run left behind on that directory.
 */
export class RedisServer {
  private child: ChildProcess | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly url: string,
    readonly port: number,
  ) {}

  /**
   * Starts redis-server and resolves once it accepts connections; rejects with a
   * {@link RedisServerError} that says how to fix what went wrong (not installed, port taken).
   */
  static async start({
    port,
    dir,
    bind = '127.0.0.1',
    appendfsync = 'everysec',
    startTimeoutMs = 10_000,
  }: RedisServerOptions): Promise<RedisServer> {
    const args = ['--port', String(port), '--bind', bind, '--daemonize', 'no', '--logfile', ''];
    if (dir) {
      await mkdir(dir, { recursive: true });
      const pidfile = path.join(dir, 'redis.pid');
      RedisServer.killLeftover(pidfile);
      args.push(
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        appendfsync,
        '--save',
        '60 1000',
        '--pidfile',
        pidfile,
      );
    } else {
      args.push('--save', '', '--appendonly', 'no');
    }
    const server = new RedisServer(`redis://${bind}:${port}`, port);
    // A process group of its own: Ctrl-C in a terminal signals the whole foreground group, and
    // a Redis that quit on that signal by itself would leave the parts still draining through it
    // hanging on reconnects. It is stopped by close(), last, after the parts that use it.
    const child = spawn('redis-server', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    server.child = child;

    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(
        () => fail(`redis-server did not become ready within ${startTimeoutMs} ms`),
        startTimeoutMs,
      );
      const fail = (message: string) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new RedisServerError(message));
      };
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new RedisServerError(
            err.code === 'ENOENT'
              ? `redis-server was not found on PATH. ${REDIS_INSTALL_HINT}`
              : `redis-server failed to start: ${err.message}`,
          ),
        );
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (/address already in use/i.test(output)) {
          reject(
            new RedisServerError(
              `Port ${port} is already in use (another Redis?). Set REDIS_URL=redis://127.0.0.1:${port} to use it, or EMBEDDED_REDIS_PORT to run ours on another port.`,
            ),
          );
        } else {
          const last = output.trim().split('\n').slice(-3).join(' | ');
          reject(new RedisServerError(`redis-server exited with code ${code}: ${last}`));
        }
      });
    });
    // Drain output so the child never blocks on a full pipe.
    child.stdout?.resume();
    child.stderr?.resume();
    return server;
  }

  /** A server left running by a run that was killed (its pidfile still names a live redis). */
  private static killLeftover(pidfile: string): void {
    if (!existsSync(pidfile)) return;
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return;
    }
    if (!cmdline.includes('redis-server')) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 5000;
    while (alive(pid) && Date.now() < deadline) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }

  /** The child's pid, while it runs. */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /** SIGTERM (Redis then writes its AOF and exits), then SIGKILL after `timeoutMs`. Safe to call twice. */
  close(timeoutMs = 5000): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const child = this.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
    return this.closing;
  }

  /** Kills the server at once, as a crash would (fault drills). */
  kill(): Promise<void> {
    return new Promise((resolve) => {
      const child = this.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }
}
