import { TEMPLATE_KINDS, type TemplateKind } from '../../contract/index.js';
import { abortableSleep } from './abortable-sleep.js';

/** What a generator knows about the client it writes for. */
export interface GenerationInput {
  clientName: string;
  industry: string;
  valueProposition: string;
}

/** One template to write, and where its text goes as it is written. */
export interface WriteTemplateRequest {
  kind: TemplateKind;
  /** Its place in the job, 0 to 6. */
  position: number;
  input: GenerationInput;
  /**
   * Text of this template already written and published by an earlier, interrupted try; the
   * generator continues after it ('' normally).
   */
  prefix: string;
  /**
   * Aborted on cancellation, deadline or shutdown: stop at once; an in-flight HTTP request to
   * the model must be aborted (the server sees the connection close).
   */
  signal: AbortSignal;
  /**
   * Text appended to the template's body, in order. The stored body will be exactly prefix +
   * every delta joined. Never called after write() settles.
   */
  onText(delta: string): void;
}

/** What is known about a template once its text has been written. */
export interface WrittenTemplate {
  title: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  /** Requests made to the model for this template, retries included (0 for the built-in). */
  requests: number;
  /** Time spent waiting on the model, ms. */
  model_ms: number;
}

/**
 * Writes templates, streaming each one's text as it is written. When `signal` aborts, write()
 * rejects with the signal's reason promptly.
 */
export interface TemplateGenerator {
  /** The kinds a job produces, in order; their count is the job's `templates_total`. */
  readonly kinds: readonly TemplateKind[];
  /** For logs and status: 'builtin' or 'openai:<model>'. */
  readonly name: string;
  /** Writes one template, reporting its text as it goes; resolves with the whole of it. */
  write(request: WriteTemplateRequest): Promise<WrittenTemplate>;
}

/** The proposition as a clause: no trailing full stop, first letter kept as written. */
function claim(vp: string): string {
  return vp
    .trim()
    .replace(/\s+/g, ' ')
    .replace(/[.!\s]+$/, '');
}

/** The proposition with a lower-case first word, to follow "we" or "that" mid-sentence. */
function inlineClaim(vp: string): string {
  const c = claim(vp);
  const stripped = c.replace(/^we\s+/i, '');
  return stripped.charAt(0).toLowerCase() + stripped.slice(1);
}

/** The first number-bearing phrase of the proposition ("30%", "2x", "$1M"), if any. */
function headlineFigure(vp: string): string | undefined {
  return /(\$?\d[\d,.]*\s?(%|x|×|percent|hours?|days?|weeks?|k|m|million)?)/i.exec(vp)?.[1]?.trim();
}

const writers: Record<TemplateKind, (i: GenerationInput) => { title: string; body: string }> = {
  outreach_email: ({ clientName, industry, valueProposition }) => ({
    title: `Outreach email: ${clientName} for ${industry} leaders`,
    body: [
      `Subject: A quick idea for your ${industry.toLowerCase()} team`,
      '',
      'Hi {{first_name}},',
      '',
      `I lead partnerships at ${clientName}. We work only with ${industry.toLowerCase()} organisations, and one thing keeps coming up in conversations like ours: ${inlineClaim(valueProposition)}.`,
      '',
      `If that is on your list for this quarter, I would like to show you how teams like {{company}} get there, in 20 minutes, with numbers from organisations your size.`,
      '',
      'Would Tuesday or Thursday afternoon suit you?',
      '',
      'Best regards,',
      '{{sender_name}}',
      clientName,
    ].join('\n'),
  }),

  linkedin_post: ({ clientName, industry, valueProposition }) => {
    const figure = headlineFigure(valueProposition);
    return {
      title: `LinkedIn post: ${clientName}`,
      body: [
        figure
          ? `${figure}. That is the number ${industry.toLowerCase()} teams ask us about first.`
          : `${industry} teams keep asking us the same question: what actually changes?`,
        '',
        `At ${clientName}, our answer is simple: ${inlineClaim(valueProposition)}.`,
        '',
        'What we learned getting there:',
        '1. Start with the workflow people already use, not a new one.',
        '2. Measure the outcome every week, not the activity.',
        '3. Put the results in front of the people doing the work.',
        '',
        `If you work in ${industry.toLowerCase()} and want the playbook, comment "playbook" and we will send it over.`,
        '',
        `#${industry.replace(/[^A-Za-z0-9]/g, '')} #${clientName.replace(/[^A-Za-z0-9]/g, '')}`,
      ].join('\n'),
    };
  },

  landing_page_hero: ({ clientName, industry, valueProposition }) => ({
    title: `Landing page hero: ${clientName}`,
    body: [
      `Headline: ${claim(valueProposition)}.`,
      `Subheadline: ${clientName} gives ${industry.toLowerCase()} teams the results, not another tool to manage.`,
      'Primary call to action: Book a 20-minute walkthrough',
      'Secondary call to action: See the results report',
      `Proof line: Trusted by ${industry.toLowerCase()} organisations that measure what matters.`,
    ].join('\n'),
  }),

  call_script: ({ clientName, industry, valueProposition }) => ({
    title: `Discovery call script: ${clientName}`,
    body: [
      `Opener: "Hi {{first_name}}, this is {{sender_name}} from ${clientName}. I'll be brief: we work with ${industry.toLowerCase()} teams, and I have one question for you."`,
      '',
      `Question: "How are you handling this today, and what does it cost you when it goes wrong?"`,
      '',
      `Bridge: "That's what we hear most. ${claim(valueProposition)}."`,
      '',
      'Qualify:',
      '- Who owns this problem on your side?',
      '- What have you already tried, and what stopped it from working?',
      '- If this worked, how would you measure it in three months?',
      '',
      `Close: "Would it be worth 20 minutes next week to see whether ${clientName} can do the same for {{company}}?"`,
      '',
      `Objection, "we already have a vendor": "Most of our ${industry.toLowerCase()} customers did too. We usually sit alongside, and the comparison speaks for itself."`,
    ].join('\n'),
  }),

  follow_up_email: ({ clientName, industry, valueProposition }) => ({
    title: `Follow-up email: ${clientName}`,
    body: [
      `Subject: Re: A quick idea for your ${industry.toLowerCase()} team`,
      '',
      'Hi {{first_name}},',
      '',
      `Following up on my note from last week. In one line: ${clientName} ${inlineClaim(valueProposition)}.`,
      '',
      'If the timing is wrong, just tell me when to check back and I will.',
      '',
      '{{sender_name}}',
    ].join('\n'),
  }),

  case_study_teaser: ({ clientName, industry, valueProposition }) => {
    const figure = headlineFigure(valueProposition);
    return {
      title: `Case study teaser: ${clientName}`,
      body: [
        `How a ${industry.toLowerCase()} organisation ${figure ? `got to ${figure}` : 'changed the outcome'} in one quarter`,
        '',
        `The challenge: a team stretched thin, results that depended on heroics, and leadership asking for proof.`,
        `The approach: ${clientName} worked alongside the team with one goal: ${inlineClaim(valueProposition)}.`,
        'The result: measurable, repeatable, and owned by the team itself.',
        '',
        'Read the full story: {{case_study_url}}',
      ].join('\n'),
    };
  },

  ad_copy: ({ clientName, industry, valueProposition }) => ({
    title: `Search and social ad copy: ${clientName}`,
    body: [
      `Headline 1: ${clientName} for ${industry}`,
      `Headline 2: ${claim(valueProposition).slice(0, 60)}`,
      'Headline 3: Book a 20-minute walkthrough',
      `Description: ${claim(valueProposition)}. Built for ${industry.toLowerCase()} teams.`,
      `Display path: /${industry.toLowerCase().replace(/[^a-z0-9]+/g, '-')}/results`,
    ].join('\n'),
  }),
};

/** The title a template of this kind gets, whoever writes its text ("Outreach email: …"). */
export function templateTitle(kind: TemplateKind, input: GenerationInput): string {
  return writers[kind](input).title;
}

/** Shortest time between two pieces of a typed-out template. */
const MIN_CHUNK_INTERVAL_MS = 10;

/** How fast the built-in generator types. */
export interface BuiltInTemplateGeneratorOptions {
  /**
   * Time each template takes to be typed out (GENERATION_STEP_MS): its words arrive in groups,
   * at most one every 10 ms. 0 writes each template in one piece at once. @defaultValue 0
   */
  stepMs?: number;
}

/**
 * The built-in generator: seven ready-to-edit sales templates written from the client's name,
 * industry and active value proposition, typed out word by word as a language model would.
 *
 * Given a `prefix` from an interrupted try, it writes what follows it. When its text does not
 * start with the prefix (the value proposition changed in between), it writes the whole text
 * after a blank line, so that the body (prefix + text) holds the complete current template
 * rather than a spliced one.
 */
export class BuiltInTemplateGenerator implements TemplateGenerator {
  readonly kinds = TEMPLATE_KINDS;
  readonly name = 'builtin';
  private readonly stepMs: number;

  constructor({ stepMs = 0 }: BuiltInTemplateGeneratorOptions = {}) {
    this.stepMs = stepMs;
  }

  async write(request: WriteTemplateRequest): Promise<WrittenTemplate> {
    const { kind, input, prefix, signal } = request;
    signal.throwIfAborted();
    const { title, body } = writers[kind](input);
    const rest = body.startsWith(prefix) ? body.slice(prefix.length) : `\n\n${body}`;
    const durationMs =
      body.length > 0 ? (this.stepMs * Math.min(rest.length, body.length)) / body.length : 0;
    const pieces = typeOut(rest, Math.floor(durationMs / MIN_CHUNK_INTERVAL_MS));
    const started = performance.now();
    for (const [i, piece] of pieces.entries()) {
      // Each piece is due at its share of the duration, counted from the start so that
      // timer lateness does not add up.
      const due = started + (durationMs * (i + 1)) / pieces.length;
      const wait = due - performance.now();
      if (wait > 0) await abortableSleep(wait, signal);
      signal.throwIfAborted();
      request.onText(piece);
    }
    return { title, usage: { prompt_tokens: 0, completion_tokens: 0 }, requests: 0, model_ms: 0 };
  }
}

/**
 * Splits a text into at most `maxPieces` pieces of whole words (each with the blank space before
 * it), as even as the words allow; joined, they are the text. At least one piece unless empty.
 */
export function typeOut(text: string, maxPieces: number): string[] {
  if (text === '') return [];
  const words: string[] = text.match(/\s*\S+/g) ?? [];
  const tail = text.slice(words.join('').length);
  if (tail !== '') words.push(tail);
  const count = Math.max(1, Math.min(words.length, maxPieces));
  const pieces: string[] = [];
  for (let i = 0; i < count; i++) {
    const from = Math.round((i * words.length) / count);
    const to = Math.round(((i + 1) * words.length) / count);
    pieces.push(words.slice(from, to).join(''));
  }
  return pieces;
}
