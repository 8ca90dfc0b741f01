import { z } from 'zod';
import { Uuid } from './ids.js';

/** Request and response bodies of triton-api's records, shared with the gateway and clients. */

/** C0 and C1 control characters (line breaks and tabs among them), DEL, and U+2028/U+2029. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
/** The same, but for the line feed a text of several lines may hold. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_BUT_LINE_FEED = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * A one-line field (a name, an industry): it ends up inside sentences, titles and an email's
 * `Subject:` line, where a line break would start a new line or header. Control characters are
 * refused; blank space is trimmed and each run of it becomes one space.
 */
const OneLine = (max: number) =>
  z
    .string()
    .refine((s) => !CONTROL.test(s), {
      message: 'must not contain control characters (line breaks, tabs and the like)',
      abort: true,
    })
    .overwrite((s) => s.replace(/\s+/g, ' ').trim())
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`);

/**
 * Text of several lines (a value proposition): line breaks are kept, as `\n` whatever the
 * sender's convention; other control characters are refused; the whole is trimmed.
 */
const MultiLine = (max: number) =>
  z
    .string()
    .overwrite((s) => s.replace(/\r\n?/g, '\n'))
    .refine((s) => !CONTROL_BUT_LINE_FEED.test(s), {
      message: 'must not contain control characters other than line breaks',
      abort: true,
    })
    .overwrite((s) => s.trim())
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`);

/** Body of `POST /clients/`: a client's name and industry, one line each; nothing else. */
export const CreateClientBody = z.strictObject({
  name: OneLine(200),
  industry: OneLine(100),
});
export type CreateClientBody = z.infer<typeof CreateClientBody>;

/** A client as both APIs answer it. */
export const Client = z.object({
  id: Uuid,
  name: z.string(),
  industry: z.string(),
  created_at: z.iso.datetime({ offset: true }),
});
export type Client = z.infer<typeof Client>;

/** `GET /clients/`: a page of clients, newest first. */
export const ClientList = z.object({ clients: z.array(Client) });
export type ClientList = z.infer<typeof ClientList>;

/** Body of `POST /clients/{client_id}/value-propositions`: what the client offers. */
export const CreateValuePropositionBody = z.strictObject({
  content: MultiLine(5000),
  /** An active proposition replaces the client's previous active one. @defaultValue true */
  is_active: z.boolean().default(true),
});
export type CreateValuePropositionBody = z.input<typeof CreateValuePropositionBody>;

/** A value proposition as both APIs answer it: a job writes its templates from the active one. */
export const ValueProposition = z.object({
  id: Uuid,
  client_id: Uuid,
  content: z.string(),
  is_active: z.boolean(),
  created_at: z.iso.datetime({ offset: true }),
});
export type ValueProposition = z.infer<typeof ValueProposition>;

/** `GET /clients/{client_id}/value-propositions`: every proposition of a client. */
export const ValuePropositionList = z.object({ value_propositions: z.array(ValueProposition) });

/** The kinds of template a job writes, in order. */
export const TEMPLATE_KINDS = [
  'outreach_email',
  'linkedin_post',
  'landing_page_hero',
  'call_script',
  'follow_up_email',
  'case_study_teaser',
  'ad_copy',
] as const;
/** One template kind. */
export const TemplateKind = z.enum(TEMPLATE_KINDS);
export type TemplateKind = z.infer<typeof TemplateKind>;

const Count = z.number().int().nonnegative();

/** What a job's model calls cost so far: tokens, requests, and time spent waiting on the model. */
export const JobUsage = z.object({
  prompt_tokens: Count,
  completion_tokens: Count,
  requests: Count,
  model_ms: Count,
});
export type JobUsage = z.infer<typeof JobUsage>;

/** Usage of a job that made no model call. */
export const NO_USAGE: JobUsage = Object.freeze({
  prompt_tokens: 0,
  completion_tokens: 0,
  requests: 0,
  model_ms: 0,
});

/** A stored template: its text, and what writing it cost. */
export const Template = z.object({
  id: Uuid,
  job_id: Uuid,
  client_id: Uuid,
  kind: TemplateKind,
  position: z.number().int().nonnegative(),
  title: z.string(),
  body: z.string(),
  /** What wrote it: `builtin` or `openai:<model>`. */
  generator: z.string().optional(),
  usage: JobUsage.optional(),
  created_at: z.iso.datetime({ offset: true }),
});
export type Template = z.infer<typeof Template>;

/** A list of templates (a client's, newest first; a job's, in order). */
export const TemplateList = z.object({ templates: z.array(Template) });
export type TemplateList = z.infer<typeof TemplateList>;
