import { TEMPLATE_KINDS, type TemplateKind } from '../../src/contract/index.js';
import type {
  GeneratedTemplate,
  TemplateGenerator,
} from '../../src/triton/worker/template-generator.js';

const TEMPLATE: GeneratedTemplate = { title: 'Benchmark template', body: 'No content.' };

/**
 * A generator that does no work: the queue benchmark measures what the project costs per job
 * around generation (records, events, the queue), not generation itself.
 */
export class NoopTemplateGenerator implements TemplateGenerator {
  readonly kinds: readonly TemplateKind[];

  /** @param templates - templates per job, at most the 7 real kinds. @defaultValue 7 */
  constructor(templates: number = TEMPLATE_KINDS.length) {
    const count = Math.max(1, Math.min(templates, TEMPLATE_KINDS.length));
    this.kinds = TEMPLATE_KINDS.slice(0, count);
  }

  generate(): Promise<GeneratedTemplate> {
    return Promise.resolve(TEMPLATE);
  }
}
