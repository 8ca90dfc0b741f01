import { describe, expect, it } from 'vitest';
import { TEMPLATE_KINDS } from '../../src/contract/index.js';
import {
  BuiltInTemplateGenerator,
  typeOut,
  type GenerationInput,
  type WriteTemplateRequest,
} from '../../src/triton/worker/template-generator.js';

const INPUT: GenerationInput = {
  clientName: 'Test Client - Message Broker',
  industry: 'Healthcare',
  valueProposition: 'We reduce hospital readmissions by 30% through AI-powered care coordination',
};

/** Writes one template, recording each delta and when it came. */
async function write(
  generator: BuiltInTemplateGenerator,
  request: Partial<WriteTemplateRequest> = {},
) {
  const deltas: { text: string; at: number }[] = [];
  const started = performance.now();
  const written = await generator.write({
    kind: 'outreach_email',
    position: 0,
    input: INPUT,
    prefix: '',
    signal: new AbortController().signal,
    onText: (text) => deltas.push({ text, at: performance.now() - started }),
    ...request,
  });
  return {
    written,
    deltas,
    text: deltas.map((d) => d.text).join(''),
    ms: performance.now() - started,
  };
}

/** The whole text of a kind, as the instant generator writes it. */
async function fullText(kind: WriteTemplateRequest['kind']): Promise<string> {
  return (await write(new BuiltInTemplateGenerator(), { kind })).text;
}

describe('BuiltInTemplateGenerator', () => {
  it("writes the original system's texts, with their titles", async () => {
    const generator = new BuiltInTemplateGenerator();
    expect(generator.name).toBe('builtin');
    expect(generator.kinds).toEqual(TEMPLATE_KINDS);
    const { written, text } = await write(generator);
    expect(written).toEqual({
      title: 'Outreach email: Test Client - Message Broker for Healthcare leaders',
      usage: { prompt_tokens: 0, completion_tokens: 0 },
      requests: 0,
      model_ms: 0,
    });
    expect(text).toMatch(
      /^Subject: A quick idea for your healthcare team\n\nHi \{\{first_name\}\},/,
    );
    expect(text).toContain(
      'reduce hospital readmissions by 30% through AI-powered care coordination.',
    );
    expect(text.endsWith('{{sender_name}}\nTest Client - Message Broker')).toBe(true);
  });

  it('with stepMs 0, writes each template in one piece at once', async () => {
    for (const kind of TEMPLATE_KINDS) {
      const { deltas, text } = await write(new BuiltInTemplateGenerator({ stepMs: 0 }), { kind });
      expect(deltas).toHaveLength(1);
      expect(text.length).toBeGreaterThan(100);
    }
  });

  it('types a template out over stepMs in a few dozen pieces of whole words', async () => {
    const whole = await fullText('outreach_email');
    const { deltas, text, ms } = await write(new BuiltInTemplateGenerator({ stepMs: 285 }));
    expect(text).toBe(whole);
    expect(deltas.length).toBeGreaterThanOrEqual(20);
    expect(deltas.length).toBeLessThanOrEqual(28);
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(1000);
    // Pieces end on word boundaries: each next piece starts with blank space.
    for (const d of deltas.slice(1)) expect(d.text).toMatch(/^\s/);
    // Spread out, not in a burst at the end: the first piece comes within the first third.
    expect(deltas[0]?.at ?? Infinity).toBeLessThan(285 / 3);
  });

  it('continues after a prefix that the text starts with, writing only the rest', async () => {
    const whole = await fullText('call_script');
    const prefix = whole.slice(0, 57);
    const { text } = await write(new BuiltInTemplateGenerator({ stepMs: 50 }), {
      kind: 'call_script',
      prefix,
    });
    expect(prefix + text).toBe(whole);
  });

  it('writes the whole current text after a blank line when the prefix is not its start', async () => {
    const whole = await fullText('ad_copy');
    const prefix = 'Headline 1: an older version of th';
    const { text } = await write(new BuiltInTemplateGenerator(), { kind: 'ad_copy', prefix });
    expect(prefix + text).toBe(`${prefix}\n\n${whole}`);
  });

  it('writes nothing when the prefix is already the whole text', async () => {
    const whole = await fullText('linkedin_post');
    const { deltas } = await write(new BuiltInTemplateGenerator({ stepMs: 20 }), {
      kind: 'linkedin_post',
      prefix: whole,
    });
    expect(deltas).toEqual([]);
  });

  it('stops at once when aborted, rejecting with the reason, and writes nothing after', async () => {
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const deltas: string[] = [];
    const started = performance.now();
    const writing = new BuiltInTemplateGenerator({ stepMs: 2000 }).write({
      kind: 'outreach_email',
      position: 0,
      input: INPUT,
      prefix: '',
      signal: controller.signal,
      onText: (text) => {
        deltas.push(text);
        if (deltas.length === 2) controller.abort(reason);
      },
    });
    await expect(writing).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1000);
    const count = deltas.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(deltas).toHaveLength(count);
    expect(count).toBe(2);
  });

  it('rejects at once for a signal that already aborted', async () => {
    const signal = AbortSignal.abort();
    await expect(write(new BuiltInTemplateGenerator(), { signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
  });
});

describe('typeOut', () => {
  it('cuts a text into at most n pieces of whole words that join back into it', () => {
    const text = '  Hello there,\n\nthis is  a test.  ';
    for (const n of [1, 2, 3, 5, 100]) {
      const pieces = typeOut(text, n);
      expect(pieces.join('')).toBe(text);
      expect(pieces.length).toBe(Math.min(n, 7));
    }
    expect(typeOut('', 5)).toEqual([]);
    expect(typeOut('word', 0)).toEqual(['word']);
  });
});
