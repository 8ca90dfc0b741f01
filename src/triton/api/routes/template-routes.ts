import { AppError, Template } from '../../../contract/index.js';
import { visibleTenant } from '../../../common/api-keys.js';
import type { HttpApp } from '../../../common/http.js';
import type { TritonStore } from '../../db/triton-store.js';
import { readErrors, TemplateParams } from './params.js';

/** One template by id. */
export function registerTemplateRoutes(app: HttpApp, { store }: { store: TritonStore }): void {
  app.get(
    '/templates/:template_id',
    {
      schema: {
        tags: ['templates'],
        summary: 'Read a template',
        params: TemplateParams,
        response: { 200: Template, ...readErrors },
      },
    },
    async (request) => {
      const t = await store.getTemplate(
        request.params.template_id,
        visibleTenant(request.principal),
      );
      if (!t)
        throw new AppError(
          'TEMPLATE_NOT_FOUND',
          `Template ${request.params.template_id} does not exist`,
        );
      return t;
    },
  );
}
