/** How {@link medianOfRounds} treats particular fields. */
export interface RoundFields {
  /** Counts where any round's figure must show (a loss in one round is a loss): the largest. */
  worst?: ReadonlySet<string>;
  /** Fields taken from the first round as they are (e.g. a record of errors). */
  first?: ReadonlySet<string>;
}

/**
 * The median of each number across rounds (nested objects field by field; other values from
 * the first round), except the `worst` fields, which keep the largest round's figure.
 */
export function medianOfRounds<T>(rounds: T[], fields: RoundFields = {}): T {
  const first = rounds[0] as T;
  if (typeof first === 'number') {
    const xs = (rounds as number[]).slice().sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)] as T;
  }
  if (first === null || typeof first !== 'object' || Array.isArray(first)) return first;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(first)) {
    const values = rounds.map((r) => (r as Record<string, unknown>)[key]);
    out[key] = fields.first?.has(key)
      ? values[0]
      : fields.worst?.has(key)
        ? Math.max(...(values as number[]))
        : medianOfRounds(values, fields);
  }
  return out as T;
}
