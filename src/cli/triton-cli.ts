import { parseArgs } from 'node:util';
import { isUuid, type JobStatusDocument, type TemplateKind } from '../contract/index.js';
import {
  JobFailedError,
  MareApiError,
  MareClient,
  TemplateTexts,
  type TemplateText,
  type WatchStatus,
} from '../client/index.js';

const USAGE = `Usage: triton-events <command> [options]

Commands:
  submit <client_id>   Submit a template-generation job; prints its id (--watch follows it)
  watch <job_id>       Follow a job live over SSE: each template's text on stdout as it is
                       written, under a header line; progress and status on stderr
  cancel <job_id>      Cancel a queued or running job (it keeps the templates already stored);
                       prints the job's status
  keys …               Make, list and revoke API keys (where the services run; see keys --help)

Options:
  --url <url>          mare-api's base URL (default http://127.0.0.1:16000)
  --watch              With submit: follow the job after submitting it
  --json               watch: every event as a JSON line; cancel: the status document as JSON
  --no-templates       Do not print the templates' text
  -h, --help           Show this help

Environment:
  TRITON_EVENTS_KEY    An API key, for a mare-api with auth on (never put it on the command line)

Exit status: 0 when the job completed (cancel: when the cancellation was accepted),
1 when it failed or mare-api answered an error (cancel: JOB_FINISHED when the job had
already ended), 2 for a usage error, 3 when the watched job was cancelled.`;

/** Exit statuses, as the usage text documents them. */
const EXIT = { ok: 0, failed: 1, usage: 2, cancelled: 3 } as const;

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

/** What each kind of template is called in a header, before its title is known. */
const KIND_LABELS: Record<TemplateKind, string> = {
  outreach_email: 'Outreach email',
  linkedin_post: 'LinkedIn post',
  landing_page_hero: 'Landing page hero',
  call_script: 'Call script',
  follow_up_email: 'Follow-up email',
  case_study_teaser: 'Case study teaser',
  ad_copy: 'Ad copy',
};

function header(position: number, label: string, kind: TemplateKind): string {
  return `\n== ${position + 1}. ${label} (${kind}) ==\n`;
}

/**
 * The progress line: redrawn in place on a terminal, one line per change otherwise. `inPlace`
 * is off when the templates' text goes to the same terminal, where a line redrawn under the
 * text would tear it.
 */
class ProgressLine {
  private last = '';
  private drawn = false;

  constructor(
    private readonly stream: Io['err'],
    private readonly inPlace: boolean,
    /** Called before a line is written, so that text in the middle of a line can end first. */
    private readonly beforeLine: () => void = () => undefined,
  ) {}

  show(text: string): void {
    if (text === this.last) return;
    this.last = text;
    if (this.inPlace) {
      this.stream.write(`\r\x1b[2K${text}`);
      this.drawn = true;
    } else {
      this.beforeLine();
      this.stream.write(`${text}\n`);
    }
  }

  /** Prints a message on its own line, keeping the progress line below it. */
  note(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    else this.beforeLine();
    this.stream.write(`${message}\n`);
    if (this.drawn) this.stream.write(this.last);
  }

  end(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}

/**
 * Prints each template's text as it is written: a header line when its first text arrives,
 * then every piece as it comes, then a line break once it is stored. Only one template is
 * written at a time, in order, so the text of one never lands inside another's.
 */
class TextPrinter {
  /** What was printed of each template: a prefix of its text, all of it once stored. */
  private readonly printed = new Map<number, string>();
  /** Templates whose text stopped extending what was printed (reprinted at the end). */
  private readonly diverged = new Set<number>();
  /** The template whose text is being printed, its line still open. */
  private open: number | undefined;

  constructor(private readonly out: Io['out']) {}

  update(template: TemplateText): void {
    const { index, kind, text, done } = template;
    let printed = this.printed.get(index);
    if (printed === undefined) {
      // Nothing to show yet, or no kind to name it by: the end prints it with its title.
      if (kind === undefined || (text === '' && !done)) return;
      this.endLine();
      this.out.write(header(index, KIND_LABELS[kind], kind));
      this.open = index;
      printed = '';
    }
    if (this.diverged.has(index)) return;
    if (this.open !== index || !text.startsWith(printed)) {
      // Text that does not continue what is on screen (only a replaced draft could): print
      // it whole at the end rather than splice it.
      if (text !== printed) this.diverged.add(index);
      return;
    }
    if (text.length > printed.length) this.out.write(text.slice(printed.length));
    this.printed.set(index, text);
    if (done) this.endLine();
  }

  /** Ends the open template's line (its text so far stays as printed). */
  endLine(): void {
    if (this.open === undefined) return;
    this.out.write('\n');
    this.open = undefined;
  }

  /** Whether a template's text was printed exactly as `body`, in one piece. */
  printedExactly(index: number, body: string): boolean {
    return !this.diverged.has(index) && this.printed.get(index) === body;
  }
}

/** Why this CLI stopped following a job, from its final status document. */
function describeEnd(jobId: string, result: JobStatusDocument): string {
  const kept = `${result.template_count} template${result.template_count === 1 ? '' : 's'}`;
  const took = `${result.generation_duration_ms ?? 0} ms`;
  switch (result.status) {
    case 'completed':
      return `Job ${jobId} completed: ${kept} in ${took}`;
    case 'cancelled':
      return `Job ${jobId} was cancelled after ${took}; it kept ${kept}`;
    default:
      return `Job ${jobId} failed: ${result.error_message ?? 'no reason given'}`;
  }
}

async function watch(
  client: MareClient,
  jobId: string,
  io: Io,
  json: boolean,
  showText: boolean,
): Promise<number> {
  // Fails fast on an unknown job or an unreachable gateway; once watching, drops are retried.
  await client.getJob(jobId);
  const text = showText && !json;
  const printer = new TextPrinter(io.out);
  // Text and progress on one terminal: progress as lines between the templates, never
  // through one (a line break first if a template's text is open).
  const shared = text && io.out.isTTY === true && io.err.isTTY === true;
  const line = new ProgressLine(io.err, io.err.isTTY === true && !shared, () => {
    if (shared) printer.endLine();
  });
  const texts = new TemplateTexts();
  let progress = 0;
  let templatesDone = 0;
  let templatesTotal = 0;
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
    // Text first: a template's line ends before the progress line that says it is stored.
    for (const index of texts.apply(event)) {
      const template = texts.get(index);
      if (text && template) printer.update(template);
    }
    if (event.event_type === 'job:delta') continue;
    if (event.event_type === 'job:progress') {
      progress = event.progress;
      templatesDone = event.templates_done;
      templatesTotal = event.templates_total;
    } else {
      if (event.status === 'completed') progress = 100;
      else if (event.event_type === 'job:snapshot' && event.progress !== null)
        progress = event.progress;
      if ('template_count' in event && event.template_count !== undefined)
        templatesDone = event.template_count;
    }
    const count = templatesTotal
      ? `  ${templatesDone}/${templatesTotal} templates`
      : templatesDone
        ? `  ${templatesDone} templates`
        : '';
    line.show(`${bar(progress)}  ${event.status}${count}`);
  }

  let result: JobStatusDocument;
  try {
    result = await job.done;
  } catch (err) {
    if (err instanceof JobFailedError) result = err.result;
    else throw err;
  }
  line.end();
  printer.endLine();
  const code =
    result.status === 'completed'
      ? EXIT.ok
      : result.status === 'cancelled'
        ? EXIT.cancelled
        : EXIT.failed;
  if (json) {
    if (code !== EXIT.ok) io.err.write(`${describeEnd(jobId, result)}\n`);
    return code;
  }
  if (text) {
    // What the stream could not show as it was written (a watch that polled: status documents
    // carry no text) is printed now, once, with its title; the rest is already out.
    const stored = await client.getJobTemplates(jobId);
    for (const t of stored) {
      if (!printer.printedExactly(t.position, t.body)) {
        io.out.write(`${header(t.position, t.title, t.kind)}${t.body}\n`);
      }
    }
    const unkept = texts.list.filter(
      (t) => t.text !== '' && !stored.some((s) => s.position === t.index),
    );
    for (const t of unkept) {
      io.err.write(
        `Template ${t.index + 1} was being written when the job ended; its text was not kept.\n`,
      );
    }
  }
  io.err.write(`${describeEnd(jobId, result)}\n`);
  return code;
}

async function cancel(client: MareClient, jobId: string, io: Io, json: boolean): Promise<number> {
  const doc = await client.cancelJob(jobId);
  if (json) {
    io.out.write(`${JSON.stringify(doc)}\n`);
    return EXIT.ok;
  }
  // The status alone on stdout, for scripts; what it means on stderr, for people.
  io.out.write(`${doc.status}\n`);
  io.err.write(
    doc.status === 'cancelled'
      ? `Job ${jobId} cancelled; it kept ${doc.template_count} templates.\n`
      : `Cancellation of job ${jobId} requested; it was ${doc.status} and stops within a second, keeping the ${doc.template_count} templates stored so far.\n`,
  );
  return EXIT.ok;
}

/** Runs the CLI with `argv` (without node and the script); resolves to the exit status. */
export async function runCli(
  argv: string[],
  io: Io = { out: process.stdout, err: process.stderr },
  env: NodeJS.ProcessEnv = process.env,
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
      return EXIT.ok;
    }
    const [command, id, ...extra] = positionals;
    if (!command || !['submit', 'watch', 'cancel'].includes(command))
      throw new UsageError('a command (submit, watch or cancel) is required');
    if (!id) throw new UsageError(`${command} needs an id`);
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
    if (!isUuid(id)) throw new UsageError(`"${id}" is not a UUID`);
    try {
      new URL(values.url);
    } catch {
      throw new UsageError(`--url "${values.url}" is not a URL`);
    }
    const apiKey = env.TRITON_EVENTS_KEY?.trim();
    const client = new MareClient({ baseUrl: values.url, ...(apiKey ? { apiKey } : {}) });
    const showText = !values['no-templates'];

    if (command === 'cancel') return await cancel(client, id, io, values.json);
    if (command === 'submit') {
      const accepted = await client.generateTemplates(id);
      io.out.write(`${accepted.job_id}\n`);
      if (!values.watch) return EXIT.ok;
      return await watch(client, accepted.job_id, io, values.json, showText);
    }
    return await watch(client, id, io, values.json, showText);
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      io.err.write(`triton-events: ${err.message}\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    if (err instanceof MareApiError) {
      io.err.write(`triton-events: ${err.code}: ${err.message}\n`);
      return EXIT.failed;
    }
    io.err.write(`triton-events: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failed;
  }
}
