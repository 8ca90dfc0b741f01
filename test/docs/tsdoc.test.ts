import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * TSDoc on every export: each exported function, class, interface, type, enum and variable in
 * `src/` has a `/** … *\/` block in front of it. Re-exports (`export … from`) are documented
 * where they are declared.
 */

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return entry.name.endsWith('.ts') ? [file] : [];
  });
}

function isExported(node: ts.Node): boolean {
  return (
    ts.canHaveModifiers(node) &&
    (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
  );
}

function nameOf(node: ts.Statement): string {
  if (ts.isVariableStatement(node)) {
    return node.declarationList.declarations.map((d) => d.name.getText()).join(', ');
  }
  const name = (node as { name?: ts.Node }).name;
  return name ? name.getText() : 'default';
}

/** `file:line name` of each exported declaration of `text` without a TSDoc block before it. */
function undocumentedExports(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const documented = new Set<string>();
  const missing: string[] = [];
  for (const statement of source.statements) {
    if (!isExported(statement) && !ts.isExportAssignment(statement)) continue;
    const name = nameOf(statement);
    const comments = ts.getLeadingCommentRanges(text, statement.pos) ?? [];
    const hasDoc = comments.some((c) => text.startsWith('/**', c.pos));
    // A value and a type of one name (`const Job = z.object(…)` and `type Job = …`), or a
    // function's overloads: one block documents them all.
    if (hasDoc) documented.add(name);
    else if (!documented.has(name)) {
      const line = source.getLineAndCharacterOfPosition(statement.getStart()).line + 1;
      missing.push(`${file}:${line} ${name}`);
    }
  }
  return missing;
}

describe('TSDoc', () => {
  it('documents every exported declaration in src/ with a /** … */ block', () => {
    const files = sourceFiles(SRC);
    expect(files.length).toBeGreaterThan(50);
    const missing = files.flatMap((file) =>
      undocumentedExports(path.relative(SRC, file), readFileSync(file, 'utf8')),
    );
    expect(missing).toEqual([]);
  });

  it('finds an export without a block, and accepts one with it', () => {
    expect(
      undocumentedExports(
        'sample.ts',
        [
          '/** Documented. */',
          'export const A = 1;',
          '/** A value and its type. */',
          'export const B = 2;',
          'export type B = typeof B;',
          '// A line comment is not TSDoc.',
          'export interface C {}',
          'export function d(): void {}',
          'const e = 1;',
          'export { e };',
        ].join('\n'),
      ),
    ).toEqual(['sample.ts:7 C', 'sample.ts:8 d']);
  });
});
