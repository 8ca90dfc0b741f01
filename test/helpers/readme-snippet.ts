import { readFileSync } from 'node:fs';
import path from 'node:path';

const README = path.resolve(import.meta.dirname, '../../README.md');

/**
 * The code block that follows `<!-- snippet: name -->` in the README, so that the examples
 * people copy are the ones the tests run.
 */
export function readmeSnippet(name: string): string {
  const text = readFileSync(README, 'utf8');
  const marker = `<!-- snippet: ${name} -->`;
  const at = text.indexOf(marker);
  if (at === -1) throw new Error(`README.md has no ${marker}`);
  const block = /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(at + marker.length));
  if (!block?.[1]) throw new Error(`README.md has no code block after ${marker}`);
  return block[1];
}
