import {
  TEMPLATE_KINDS,
  type JobDeltaEvent,
  type JobEventDraft,
} from '../../src/contract/index.js';
import {
  emptyDigest,
  extendDigest,
  microsecondTimestamp,
  templateKey,
  wireText,
  type TextDigest,
} from './delta-frames.js';

/**
 * What the deltas are cut from: copy of the kind a job writes, with what makes escaping matter
 * (quotes, line breaks, a tab, backslashes, characters beyond ASCII; none beyond the BMP, so a
 * cut never splits a surrogate pair).
 */
const CORPUS = [
  'Subject: A faster way to close the quarter — without adding headcount\n\n',
  'Hi Dana,\n\nI noticed Northwind’s finance team is hiring again. Most teams we talk to spend ',
  'the last week of every quarter reconciling spreadsheets by hand; with Ledgerly, the close ',
  'runs itself: invoices matched, accruals posted, variances flagged before anyone asks.\n\n',
  '• 62% less time spent on month-end close\n• “Audit-ready” trails for every entry\n',
  '• Works with NetSuite, SAP and QuickBooks — no migration\n\n',
  'Would a 20-minute walkthrough next Tuesday or Wednesday work? I can show the exact ',
  'reconciliation your team does today, rebuilt on your own data.\n\nBest,\nJosé\n\n',
  '## Hero\n\nClose the books in days, not weeks.\n\nLedgerly automates reconciliation, ',
  'accruals and reporting for finance teams of 5–500. Start free; €0 until you go live.\n\n',
  'CALL SCRIPT\tOpening: "Hi, this is José from Ledgerly — did I catch you at a bad time?"\n',
  'If yes: "No problem; when is better?" If no: ask about their close (C:\\finance\\close).\n\n',
].join('');

/** mulberry32: a small seeded generator, so both sides of a run publish the same sizes. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Where one job is in its writing. */
interface JobWriting {
  templateIndex: number;
  /** Characters left before it moves on to its next template. */
  left: number;
  /** Where its next delta starts in the corpus. */
  at: number;
}

/** What {@link DeltaScript} takes. */
export interface DeltaScriptOptions {
  /** Shortest and longest delta, characters. @defaultValue 20, 60 */
  minChars?: number;
  maxChars?: number;
  /** @defaultValue 1 */
  seed?: number;
}

/**
 * Writes the jobs' `job:delta` events as a worker would (deltas of 20–60 characters, each job
 * moving on through its templates), and keeps the digest of the text each template was
 * published with, for the clients' texts to be checked against.
 */
export class DeltaScript {
  private readonly jobs = new Map<string, JobWriting>();
  private readonly random: () => number;
  private readonly minChars: number;
  private readonly maxChars: number;
  private templateChars = Number.POSITIVE_INFINITY;
  private readonly texts = new Map<string, TextDigest>();

  constructor({ minChars = 20, maxChars = 60, seed = 1 }: DeltaScriptOptions = {}) {
    this.random = seededRandom(seed);
    this.minChars = minChars;
    this.maxChars = maxChars;
  }

  /**
   * Starts a phase (a warm-up, the measured run): every job moves on to its next template, and
   * the texts published so far are forgotten, so no template's text straddles two phases. Each
   * template of the phase is about `templateChars` long (±30%) and the last one written takes
   * whatever is left.
   */
  nextPhase(templateChars = Number.POSITIVE_INFINITY): void {
    this.templateChars = templateChars;
    this.texts.clear();
    for (const job of this.jobs.values()) {
      job.templateIndex++;
      job.left = this.templateLength();
    }
  }

  /** The next delta of `jobId`, stamped `sentAtMs`. */
  draft(jobId: string, clientId: string, sentAtMs: number): JobEventDraft {
    let job = this.jobs.get(jobId);
    if (!job) {
      job = { templateIndex: 0, left: this.templateLength(), at: 0 };
      this.jobs.set(jobId, job);
    }
    if (job.left <= 0 && job.templateIndex < TEMPLATE_KINDS.length - 1) {
      job.templateIndex++;
      job.left = this.templateLength();
    }
    const size = this.minChars + Math.floor(this.random() * (this.maxChars - this.minChars + 1));
    if (job.at + size > CORPUS.length) job.at = 0;
    const delta = CORPUS.slice(job.at, job.at + size);
    job.at += size;
    job.left -= size;
    const key = templateKey(jobId, job.templateIndex);
    let text = this.texts.get(key);
    if (!text) this.texts.set(key, (text = emptyDigest()));
    extendDigest(text, wireText(delta));
    const event: Omit<JobDeltaEvent, 'seq'> = {
      event_type: 'job:delta',
      timestamp: microsecondTimestamp(sentAtMs),
      job_id: jobId,
      client_id: clientId,
      status: 'running',
      template_index: job.templateIndex,
      template_kind: TEMPLATE_KINDS[job.templateIndex % TEMPLATE_KINDS.length] ?? 'ad_copy',
      delta,
    };
    return event;
  }

  /** The digest of each template's text published in this phase, by {@link templateKey}. */
  expectedTexts(): ReadonlyMap<string, TextDigest> {
    return this.texts;
  }

  private templateLength(): number {
    return Math.round(this.templateChars * (0.7 + 0.6 * this.random()));
  }
}
