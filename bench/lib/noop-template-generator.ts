import { TEMPLATE_KINDS, type TemplateKind } from '../../src/contract/index.js';
import type {
  TemplateGenerator,
  WriteTemplateRequest,
  WrittenTemplate,
} from '../../src/triton/worker/template-generator.js';

const TITLE = 'Benchmark template';
const BODY = 'No content.';

/**
 * A generator that does no work: the queue benchmark measures what the project costs per job
 * around generation (records, events, the queue), not generation itself.
 */
export class NoopTemplateGenerator implements TemplateGenerator {
  readonly kinds: readonly TemplateKind[];
  readonly name = 'noop';

  /** @param templates - templates per job, at most the 7 real kinds. @defaultValue 7 */
  constructor(templates: number = TEMPLATE_KINDS.length) {
    const count = Math.max(1, Math.min(templates, TEMPLATE_KINDS.length));
    this.kinds = TEMPLATE_KINDS.slice(0, count);
  }

  write(request: WriteTemplateRequest): Promise<WrittenTemplate> {
    const { prefix } = request;
    const rest = BODY.startsWith(prefix) ? BODY.slice(prefix.length) : BODY;
    if (rest !== '') request.onText(rest);
    return Promise.resolve({
      title: TITLE,
      usage: { prompt_tokens: 0, completion_tokens: 0 },
      requests: 0,
      model_ms: 0,
    });
  }
}
