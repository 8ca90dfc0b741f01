/**
 * Temporary compatibility with generation-processor.ts, which still calls the former
 * `generate(kind, input)` and stores its whole text at once. Once the processor calls
 * `write()` (streaming `job:delta` events), delete this file and the `generate()` methods
 * that call {@link generateByWriting}; nothing else depends on it.
 */
import type { TemplateKind } from '../../contract/index.js';
import type { GenerationInput, TemplateGenerator } from './template-generator.js';

/** A whole template, as the former `generate()` returned it. */
export interface GeneratedTemplate {
  title: string;
  body: string;
}

declare module './template-generator.js' {
  interface TemplateGenerator {
    /**
     * @deprecated The former interface, kept until generation-processor.ts calls `write()`:
     * writes the template with a signal that never aborts and returns its whole text.
     */
    generate(kind: TemplateKind, input: GenerationInput): Promise<GeneratedTemplate>;
  }
}

/** The former `generate()` on top of `write()`: collects every delta into the body. */
export async function generateByWriting(
  generator: TemplateGenerator,
  kind: TemplateKind,
  input: GenerationInput,
): Promise<GeneratedTemplate> {
  let body = '';
  const { title } = await generator.write({
    kind,
    position: Math.max(0, generator.kinds.indexOf(kind)),
    input,
    prefix: '',
    signal: new AbortController().signal,
    onText: (delta) => {
      body += delta;
    },
  });
  return { title, body };
}
