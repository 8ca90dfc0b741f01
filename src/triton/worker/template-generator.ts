import { TEMPLATE_KINDS, type TemplateKind } from '../../contract/index.js';

/** What a generator knows about the client it writes for. */
export interface GenerationInput {
  clientName: string;
  industry: string;
  valueProposition: string;
}

export interface GeneratedTemplate {
  title: string;
  body: string;
}

/** Writes one template of a kind. An LLM-backed generator implements the same interface. */
export interface TemplateGenerator {
  /** The kinds a job produces, in order; their count is the job's `templates_total`. */
  readonly kinds: readonly TemplateKind[];
  generate(kind: TemplateKind, input: GenerationInput): Promise<GeneratedTemplate>;
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

const writers: Record<TemplateKind, (i: GenerationInput) => GeneratedTemplate> = {
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

/**
 * The built-in generator: seven ready-to-edit sales templates written from the client's name,
 * industry and active value proposition.
 */
export class BuiltInTemplateGenerator implements TemplateGenerator {
  readonly kinds = TEMPLATE_KINDS;

  generate(kind: TemplateKind, input: GenerationInput): Promise<GeneratedTemplate> {
    return Promise.resolve(writers[kind](input));
  }
}
