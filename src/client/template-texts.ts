import type { TemplateKind } from '../contract/index.js';
import type { JobWatchEvent } from './status-document-from-events.js';

/** One template's text as a watcher has it. */
export interface TemplateText {
  /** Its place in the job, 0 to 6. */
  index: number;
  kind: TemplateKind | undefined;
  /** The text so far; once `done`, exactly the stored body. */
  text: string;
  /** True once the template is stored. */
  done: boolean;
}

/**
 * A job's templates' text, folded from its events as they arrive: `job:delta` appends to its
 * template, `job:progress` marks the template stored, a `job:snapshot` replaces everything with
 * what it carries. Deltas are applied in the order given (a watch gives them in seq order).
 */
export class TemplateTexts {
  private readonly byIndex = new Map<number, TemplateText>();

  /** The templates with any text, in order. */
  get list(): TemplateText[] {
    return [...this.byIndex.values()].sort((a, b) => a.index - b.index);
  }

  /** One template, if it has text. */
  get(index: number): TemplateText | undefined {
    return this.byIndex.get(index);
  }

  /** Applies an event; returns the indexes whose text or state changed. */
  apply(event: JobWatchEvent): number[] {
    switch (event.event_type) {
      case 'job:delta': {
        const entry = this.entry(event.template_index);
        entry.kind = event.template_kind;
        if (entry.done) return [];
        entry.text += event.delta;
        return [event.template_index];
      }
      case 'job:progress': {
        const entry = this.entry(event.templates_done - 1);
        if (entry.done) return [];
        entry.done = true;
        return [entry.index];
      }
      case 'job:snapshot': {
        // A snapshot without text (a polled document) says nothing about the text we have.
        if (event.templates === undefined) return [];
        const changed = new Set(this.byIndex.keys());
        this.byIndex.clear();
        for (const t of event.templates) {
          this.byIndex.set(t.template_index, {
            index: t.template_index,
            kind: t.template_kind,
            text: t.body,
            done: true,
          });
          changed.add(t.template_index);
        }
        if (event.draft) {
          const { template_index: index, template_kind: kind, text } = event.draft;
          this.byIndex.set(index, { index, kind, text, done: false });
          changed.add(index);
        }
        return [...changed].sort((a, b) => a - b);
      }
      default:
        return [];
    }
  }

  private entry(index: number): TemplateText {
    let entry = this.byIndex.get(index);
    if (!entry)
      this.byIndex.set(index, (entry = { index, kind: undefined, text: '', done: false }));
    return entry;
  }
}
