import type { TemplateKind } from '../../contract/index.js';

/** What a language model is told about one kind of template. */
export interface TemplateBrief {
  /** The kind's name in a sentence ("the outreach email"), for prompts and error messages. */
  name: string;
  /** What to write and in which format: the built-in generator's texts are the model. */
  brief: string;
}

/** One brief per kind: what the template is for and the shape of its text. */
export const TEMPLATE_BRIEFS: Readonly<Record<TemplateKind, TemplateBrief>> = {
  outreach_email: {
    name: 'outreach email',
    brief:
      'a first cold outreach email to a decision-maker at a prospective customer. First line: ' +
      '"Subject: " and a short subject line; then a blank line; then "Hi {{first_name}},"; then ' +
      'three short paragraphs: who the client is and the problem it solves for organisations in ' +
      'its industry, the value proposition (with its figure, if it has one), and one concrete ask ' +
      '(a 20-minute call, offering two afternoons). End with "Best regards,", {{sender_name}} and ' +
      "the client's name on lines of their own. At most 150 words.",
  },
  linkedin_post: {
    name: 'LinkedIn post',
    brief:
      "a LinkedIn post for the client's company page. A first line that makes people stop " +
      "scrolling (lead with the value proposition's figure, if it has one); a short paragraph " +
      'stating the value proposition; "What we learned getting there:" followed by three ' +
      'numbered lessons of one line each; an invitation to comment; and a last line of two or ' +
      'three hashtags (the industry and the client). No emojis. At most 180 words.',
  },
  landing_page_hero: {
    name: 'landing page hero',
    brief:
      'the hero section of a landing page, as exactly these five labelled lines and nothing ' +
      'else: "Headline: " (at most 10 words, built on the value proposition), "Subheadline: " ' +
      '(one sentence on what the client does for its industry), "Primary call to action: ", ' +
      '"Secondary call to action: " and "Proof line: ".',
  },
  call_script: {
    name: 'discovery call script',
    brief:
      'a discovery call script for a sales representative, as labelled parts separated by ' +
      'blank lines: "Opener: " (in quotes: {{sender_name}} from the client introduces ' +
      'themselves to {{first_name}} in two sentences), "Question: " (one open question about how ' +
      'they handle the problem today), "Bridge: " (connects their answer to the value ' +
      'proposition), "Qualify:" followed by three questions each on a line starting with "- ", ' +
      '"Close: " (asks for 20 minutes next week to see what the client can do for {{company}}), ' +
      'and one line "Objection, "we already have a vendor": " with a short answer.',
  },
  follow_up_email: {
    name: 'follow-up email',
    brief:
      'a short follow-up to a prospect who did not answer a first email. First line: ' +
      '"Subject: Re: " and the first email\'s likely subject; then a blank line; then ' +
      '"Hi {{first_name}},"; then two or three sentences: a reminder, the value proposition in ' +
      'one line, and an offer to check back at a better time. Sign off with {{sender_name}} on ' +
      'its own line. At most 80 words.',
  },
  case_study_teaser: {
    name: 'case study teaser',
    brief:
      'a teaser for a customer case study. A first line with a headline (the customer is ' +
      '"a <industry> organisation": never invent its name); a blank line; then three lines ' +
      'starting "The challenge: ", "The approach: " and "The result: ", one or two sentences ' +
      'each; a blank line; and the last line "Read the full story: {{case_study_url}}". Use no ' +
      'figures other than those in the value proposition.',
  },
  ad_copy: {
    name: 'ad copy',
    brief:
      'search and social ad copy, as exactly these five labelled lines and nothing else: ' +
      '"Headline 1: ", "Headline 2: " and "Headline 3: " (each at most 30 characters, the third ' +
      'a call to action), "Description: " (at most 90 characters) and "Display path: " (a short ' +
      'URL path such as /healthcare/results).',
  },
};

/** What the model is, and the rules every template follows. */
export const SYSTEM_PROMPT = [
  'You are a B2B copywriter. You write sales templates that a sales team edits and sends.',
  'Write plain text, not Markdown: no code fences, no # headings, no bold or italics.',
  'Answer with the template only: no introduction before it and no notes after it.',
  'Where the sender fills something in, write a placeholder in double curly braces:',
  "{{first_name}} for the recipient's first name, {{company}} for the recipient's company,",
  '{{sender_name}} for the person sending it.',
  'Never invent facts, customer names or figures beyond the ones you are given.',
].join('\n');

/** Asks the model to go on with an answer that was cut off, so that nothing is written twice. */
export const CONTINUE_PROMPT =
  'Your answer was cut off. Continue it exactly where it stops: start with the very next ' +
  'characters, do not repeat anything already written, do not start over, and add nothing ' +
  'after the end of the template.';
