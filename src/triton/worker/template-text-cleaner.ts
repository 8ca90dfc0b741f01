/**
 * Removes the wrapping a language model puts around a template (blank space at either end, a
 * Markdown code fence around the whole text) from a text that arrives in pieces, without
 * waiting for the end: everything that cannot turn out to be wrapping is passed on at once.
 *
 * Only the two ends can be wrapping, so only they are held back: at the start, blank space and
 * what may still become an opening fence line (```` ```markdown ````); at the end, trailing
 * blank space and, when the text opened with a fence, what may still become its closing fence.
 * Anything else, fences in the middle included, is the model's text and is kept.
 */
export class TemplateTextCleaner {
  /** Text received and not passed on yet. */
  private pending = '';
  /** Whether the start (blank space, an opening fence) is behind us. */
  private started: boolean;
  /** Whether any text has been passed on (a closing fence needs a line of its own after it). */
  private emitted: boolean;
  /** Whether the text opened with a fence, so that a fence at its very end closes it. */
  private fenced: boolean;
  private ended = false;

  /**
   * @param options.resume - The text continues one that was already passed on (a template
   *   resumed after an interruption): its start is kept as is, blank space included, and only
   *   its end is cleaned, a closing fence included. @defaultValue false
   */
  constructor({ resume = false }: { resume?: boolean } = {}) {
    this.started = resume;
    this.emitted = resume;
    this.fenced = resume;
  }

  /** Takes the next piece of the model's text; returns what can be passed on now (maybe ''). */
  push(piece: string): string {
    if (this.ended) throw new Error('TemplateTextCleaner: push() after end()');
    this.pending += piece;
    if (!this.started && !this.skipStart()) return '';
    return this.release();
  }

  /** The stream is over: returns the rest, without the closing fence and trailing blank space. */
  end(): string {
    if (this.ended) return '';
    this.ended = true;
    let rest = this.pending;
    this.pending = '';
    if (!this.started) {
      rest = rest.trimStart();
      // The whole answer was an opening fence line, with nothing in it.
      if (OPENING_FENCE_PREFIX.test(rest)) return '';
    }
    rest = rest.trimEnd();
    if (this.fenced) {
      const fence = this.emitted ? CLOSING_FENCE_AFTER_TEXT : CLOSING_FENCE_ANYWHERE;
      rest = rest.replace(fence, '').trimEnd();
    }
    if (rest !== '') this.emitted = true;
    return rest;
  }

  /**
   * Drops leading blank space and an opening fence line. Returns true once the text proper has
   * begun, false while what was received could still be wrapping.
   */
  private skipStart(): boolean {
    for (;;) {
      this.pending = this.pending.trimStart();
      if (this.pending === '') return false;
      if (this.fenced || !this.pending.startsWith('`')) break;
      const opening = OPENING_FENCE.exec(this.pending);
      if (opening) {
        this.pending = this.pending.slice(opening[0].length);
        this.fenced = true;
        continue;
      }
      if (OPENING_FENCE_PREFIX.test(this.pending)) return false;
      break;
    }
    this.started = true;
    return true;
  }

  /** Passes on all but the longest tail that could still become the end's wrapping. */
  private release(): string {
    const keepFrom = this.tailStart();
    const out = this.pending.slice(0, keepFrom);
    this.pending = this.pending.slice(keepFrom);
    if (out !== '') this.emitted = true;
    return out;
  }

  private tailStart(): number {
    if (!this.fenced) return this.pending.search(/\s*$/);
    // Before any text, a closing fence needs no newline in front: probe as if there were one.
    const probe = this.emitted ? this.pending : `\n${this.pending}`;
    const at = probe.search(POSSIBLE_END);
    return this.emitted ? at : Math.max(0, at - 1);
  }
}

/** A complete opening fence line: three or more backticks, maybe a language name. */
const OPENING_FENCE = /^`{3,}[ \t]*[\w+.#-]*[ \t\r]*\n/;
/** The start of an opening fence line, or one without its newline yet. */
const OPENING_FENCE_PREFIX = /^(`{1,2}|`{3,}[ \t]*[\w+.#-]*[ \t\r]*)$/;
/**
 * A tail that is, or may become, the end's wrapping: blank space; or blank space, a newline,
 * and a fence line (still short of three backticks, or complete and followed by blank space).
 */
const POSSIBLE_END = /(\s*\n[ \t]*(`{1,2}|`{3,}\s*)|\s*)$/;
const CLOSING_FENCE_AFTER_TEXT = /\n[ \t]*`{3,}$/;
const CLOSING_FENCE_ANYWHERE = /(^|\n)[ \t]*`{3,}$/;
