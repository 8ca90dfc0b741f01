import { parseArgs } from 'node:util';
import { isUuid, type JobStatusDocument } from '../contract/index.js';
import {
  JobFailedError,
  MareApiError,
  MareClient,
  type JobWatchEvent,
  type WatchStatus,
} from '../client/index.js';

const USAGE = `Usage: triton-events <command> [options]

Commands:
  submit <client_id>   Submit a template-generation job; prints its id (--watch follows it)
  watch <job_id>       Follow a job live over SSE with a progress bar, then print its templates

Options:
  --url <url>          mare-api's base URL (default http://127.0.0.1:16000)
  --watch              With submit: follow the job after submitting it
  --json               Print every event as a JSON line instead of the progress bar
  --no-templates       Do not print the templates at the end
  -h, --help           Show this help

Exit status: 0 when the job completed, 1 when it failed or mare-api answered an error,
2 for a usage error.`;

/** Where the CLI writes: the streams in production, buffers in tests if ever needed. */
interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

class UsageError extends Error {}

const BAR_WIDTH = 28;

function bar(progress: number): string {
  const filled = Math.round((progress / 100) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${String(Math.round(progress)).padStart(3)}%`;
}

/** The progress line: redrawn in place on a terminal, one line per change otherwise. */
class ProgressLine {
  private last = '';
  private drawn = false;

  constructor(private readonly stream: Io['err']) {}

  show(text: string): void {
    if (text === this.last) return;
    this.last = text;
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[2K${text}`);
      this.drawn = true;
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /** Prints a message on its own line, keeping the progress line below it. */
  note(message: string): void {
    if (this.stream.isTTY && this.drawn) this.stream.write('\r\x1b[2K');
    this.stream.write(`${message}\n`);
    if (this.stream.isTTY && this.drawn) this.stream.write(this.last);
  }

  end(): void {
    if (this.stream.isTTY && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}

function describe(event: JobWatchEvent, progress: number): string {
  const templates =
    event.event_type === 'job:progress'
      ? `  ${event.templates_done}/${event.templates_total} templates`
      : '';
  return `${bar(progress)}  ${event.status}${templates}`;
}

async function watch(
  client: MareClient,
  jobId: string,
  io: Io,
  json: boolean,
  templates: boolean,
): Promise<number> {
  // Fails fast on an unknown job or an unreachable gateway; once watching, drops are retried.
  await client.getJob(jobId);
  const line = new ProgressLine(io.err);
  let progress = 0;
  let status: WatchStatus = 'connecting';
  const job = client.watchJob(jobId, {
    onStatus: (next, detail) => {
      if (json || next === status) return;
      if (next === 'reconnecting')
        line.note(`Connection lost; reconnecting (attempt ${detail.failures + 1})…`);
      if (next === 'polling') line.note('Streaming unavailable; polling for status instead…');
      if (next === 'open' && (status === 'reconnecting' || status === 'polling'))
        line.note('Reconnected.');
      status = next;
    },
  });

  for await (const event of job) {
    if (json) {
      io.out.write(`${JSON.stringify(event)}\n`);
      continue;
    }
    if (event.event_type === 'job:progress') progress = event.progress;
    else if (event.status === 'completed') progress = 100;
    else if (event.event_type === 'job:snapshot' && event.progress !== null)
      progress = event.progress;
    line.show(describe(event, progress));
  }

  let result: JobStatusDocument;
  try {
    result = await job.done;
  } catch (err) {
    line.end();
    if (err instanceof JobFailedError) result = err.result;
    else throw err;
  }
  line.end();
  if (result.status === 'failed') {
    io.err.write(`Job ${jobId} failed: ${result.error_message ?? 'no reason given'}\n`);
    return 1;
  }
  if (json) return 0;
  io.err.write(
    `Job ${jobId} completed: ${result.template_count} templates in ${result.generation_duration_ms ?? 0} ms\n`,
  );
  if (templates) {
    for (const template of await client.getJobTemplates(jobId)) {
      io.out.write(
        `\n== ${template.position + 1}. ${template.title} (${template.kind}) ==\n${template.body}\n`,
      );
    }
  }
  return 0;
}

/** Runs the CLI with `argv` (without node and the script); resolves to the exit status. */
export async function runCli(
  argv: string[],
  io: Io = { out: process.stdout, err: process.stderr },
): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string', default: 'http://127.0.0.1:16000' },
        watch: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'no-templates': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      io.out.write(`${USAGE}\n`);
      return 0;
    }
    const [command, id, ...extra] = positionals;
    if (!command || !['submit', 'watch'].includes(command))
      throw new UsageError('a command (submit or watch) is required');
    if (!id) throw new UsageError(`${command} needs an id`);
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
    if (!isUuid(id)) throw new UsageError(`"${id}" is not a UUID`);
    try {
      new URL(values.url);
    } catch {
      throw new UsageError(`--url "${values.url}" is not a URL`);
    }
    const client = new MareClient({ baseUrl: values.url });

    if (command === 'submit') {
      const accepted = await client.generateTemplates(id);
      io.out.write(`${accepted.job_id}\n`);
      if (!values.watch) return 0;
      return await watch(client, accepted.job_id, io, values.json, !values['no-templates']);
    }
    return await watch(client, id, io, values.json, !values['no-templates']);
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      io.err.write(`triton-events: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof MareApiError) {
      io.err.write(`triton-events: ${err.code}: ${err.message}\n`);
      return 1;
    }
    io.err.write(`triton-events: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
