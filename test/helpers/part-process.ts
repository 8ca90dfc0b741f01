import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** One log line of a part, as pino writes it with LOG_FORMAT=json. */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/**
 * A part of the system (`src/triton/main-worker.ts`, …) running as its own process, the way
 * production runs it, with an environment the test controls entirely.
 */
export class PartProcess {
  readonly logs: LogLine[] = [];
  /** Every line it wrote to stdout, as written (for checks on the text itself). */
  readonly lines: string[] = [];
  /** Everything it wrote that was not a JSON log line (start-up errors…). */
  output = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  private constructor(script: string, env: Record<string, string>) {
    // `node --import tsx`, not the tsx CLI: the CLI runs the script in a child process, which a
    // SIGKILL to the CLI would leave running.
    this.child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        LOG_FORMAT: 'json',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        this.lines.push(line);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.output += `${line}\n`;
        }
      }
    });
    this.child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /** Starts `script` (relative to the repository) and waits for a log line matching `ready`. */
  static async start(
    script: string,
    env: Record<string, string>,
    { ready, timeoutMs = 60_000 }: { ready?: RegExp; timeoutMs?: number } = {},
  ): Promise<PartProcess> {
    const part = new PartProcess(script, env);
    if (ready) await part.waitForLog(ready, timeoutMs);
    return part;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for a log line whose message matches; fails at once if the process exits first. */
  async waitForLog(pattern: RegExp, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logs.find((l) => pattern.test(l.msg));
      if (line) return line;
      if (!this.running) {
        throw new Error(
          `exited (${this.child.exitCode}) before logging ${pattern}: ${this.output.slice(-1000)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `no log line matching ${pattern} within ${timeoutMs} ms: ${this.output.slice(-1000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends a signal and waits for the exit; SIGKILL after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  /** Kills it at once, as a crash or an OOM kill would. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}
