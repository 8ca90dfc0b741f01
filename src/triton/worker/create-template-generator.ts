import type { TritonConfig } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import type { TritonMetrics } from '../triton-metrics.js';
import { OpenAiTemplateGenerator } from './openai-template-generator.js';
import { BuiltInTemplateGenerator, type TemplateGenerator } from './template-generator.js';

/** What a generator reports to: the worker's log and, when given, its metrics. */
export interface TemplateGeneratorDeps {
  logger: Logger;
  metrics?: TritonMetrics | undefined;
}

/**
 * The generator the configuration names (GENERATOR): the built-in one, typing each template
 * out over GENERATION_STEP_MS, or a language model behind an OpenAI-compatible API.
 */
export function createTemplateGenerator(
  config: Pick<TritonConfig, 'generator' | 'generationStepMs'>,
  { logger, metrics }: TemplateGeneratorDeps,
): TemplateGenerator {
  const { generator } = config;
  if (generator.type === 'builtin') {
    return new BuiltInTemplateGenerator({ stepMs: config.generationStepMs });
  }
  return new OpenAiTemplateGenerator({
    baseUrl: generator.baseUrl,
    apiKey: generator.apiKey,
    model: generator.model,
    timeoutMs: generator.timeoutMs,
    temperature: generator.temperature,
    maxTokens: generator.maxTokens,
    maxRetries: generator.maxRetries,
    metrics,
    logger,
  });
}
