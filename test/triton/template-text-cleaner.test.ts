import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TemplateTextCleaner } from '../../src/triton/worker/template-text-cleaner.js';

/** Feeds the pieces through a cleaner; returns what it passed on after each, and at the end. */
function clean(pieces: string[], options?: { resume?: boolean }) {
  const cleaner = new TemplateTextCleaner(options);
  const outs = pieces.map((p) => cleaner.push(p));
  const rest = cleaner.end();
  return { outs, rest, text: outs.join('') + rest };
}

/** Every way of cutting `text` in two, and into single characters. */
function cuts(text: string): string[][] {
  const ways = [[text], [...text]];
  for (let i = 1; i < text.length; i++) ways.push([text.slice(0, i), text.slice(i)]);
  return ways;
}

const BODY = 'Subject: Hello\n\nHi {{first_name}},\n\nShort note.\n\n{{sender_name}}';

describe('TemplateTextCleaner', () => {
  it.each([
    ['plain text', BODY, BODY],
    ['blank space around the text', `\n\n  ${BODY}  \n\n`, BODY],
    ['a ```markdown fence', `\`\`\`markdown\n${BODY}\n\`\`\``, BODY],
    ['a bare fence with blank lines inside and out', `\n\`\`\`\n\n${BODY}\n\n\`\`\`\n\n`, BODY],
    ['a fence with CRLF line ends', `\`\`\`text\r\n${BODY}\r\n\`\`\`\r\n`, BODY],
    ['a four-backtick fence', `\`\`\`\`md\n${BODY}\n\`\`\`\``, BODY],
    ['an unclosed fence', `\`\`\`markdown\n${BODY}\n`, BODY],
  ])('removes %s, however the text is cut', (_name, input, expected) => {
    for (const pieces of cuts(input)) {
      expect(clean(pieces).text, JSON.stringify(pieces)).toBe(expected);
    }
  });

  it.each([
    ['a fence in the middle', `Intro:\n\`\`\`\ncode\n\`\`\`\nOutro.`],
    ['a closing fence without an opening one', `${BODY}\n\`\`\``],
    ['inline code at the start', '`npm start` runs it'],
    ['backticks that are not a fence at the end', `${BODY}\n\`\``],
    ['a fence with text after it at the end', `${BODY}\n\`\`\` and more`],
  ])('keeps %s', (_name, input) => {
    for (const pieces of cuts(input)) {
      expect(clean(pieces).text, JSON.stringify(pieces)).toBe(input.trim());
    }
  });

  it('keeps text after a fence that closes early, fence included', () => {
    const input = `\`\`\`\n${BODY}\n\`\`\`\n\nLet me know if you want changes.`;
    expect(clean(cuts(input)[1] ?? []).text).toBe(
      `${BODY}\n\`\`\`\n\nLet me know if you want changes.`,
    );
  });

  it('passes text on at once, holding back only what may still be wrapping', () => {
    const cleaner = new TemplateTextCleaner();
    expect(cleaner.push('\n ')).toBe('');
    expect(cleaner.push('``')).toBe('');
    expect(cleaner.push('`mark')).toBe('');
    expect(cleaner.push('down\nSub')).toBe('Sub');
    expect(cleaner.push('ject: Hi')).toBe('ject: Hi');
    expect(cleaner.push('\n\n')).toBe('');
    expect(cleaner.push('Body')).toBe('\n\nBody');
    expect(cleaner.push(' text \n')).toBe(' text');
    expect(cleaner.push('``')).toBe('');
    expect(cleaner.push('`')).toBe('');
    expect(cleaner.push('\n')).toBe('');
    expect(cleaner.end()).toBe('');
  });

  it('passes on a fence-like tail as soon as it turns out to be text', () => {
    const cleaner = new TemplateTextCleaner();
    expect(cleaner.push('```\nA')).toBe('A');
    expect(cleaner.push('\n```')).toBe('');
    expect(cleaner.push('js')).toBe('\n```js');
  });

  it('gives nothing for an answer that is only wrapping', () => {
    for (const input of ['', '   \n', '```', '```markdown\n', '```\n```', '\n```\n\n```\n']) {
      expect(clean([input]).text, JSON.stringify(input)).toBe('');
    }
  });

  it('keeps the start of a resumed text as is and cleans only its end', () => {
    expect(clean([' and then', ' more.\n\n'], { resume: true }).text).toBe(' and then more.');
    expect(clean(['\n\nNext paragraph.\n```\n'], { resume: true }).text).toBe(
      '\n\nNext paragraph.',
    );
  });

  it('holds back no more than the possible wrapping at the end (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', ' ', '\n', '`', '```', 'x y'), { maxLength: 30 }),
        fc.array(fc.nat({ max: 40 }), { maxLength: 5 }),
        (parts, cutAt) => {
          const input = parts.join('');
          const bounds = [...new Set(cutAt.map((c) => Math.min(c, input.length)))].sort(
            (a, b) => a - b,
          );
          const pieces: string[] = [];
          let from = 0;
          for (const b of [...bounds, input.length]) {
            pieces.push(input.slice(from, b));
            from = b;
          }
          const whole = clean([input]).text;
          // However the text is cut, the result is the same, and it is the input minus its ends.
          expect(clean(pieces).text).toBe(whole);
          expect(input.includes(whole)).toBe(true);
        },
      ),
    );
  });
});
