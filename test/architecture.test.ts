/**
 * The layering of src/ (src/architecture.ts): no upward import between stage folders, no import
 * cycle, and every cross-folder import through the folder's index.ts. Imports are read with the
 * TypeScript parser (static imports and re-exports, `import type` included; dynamic `import()`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { STAGES } from '../src/architecture.js';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');

interface Edge {
  from: string; // path relative to src/, e.g. 'compare/pipeline.ts'
  to: string;
  /** Erased at runtime (`import type`, `export type`, or every named binding `type`). */
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The imports of one file that point into src/ (relative specifiers), resolved to .ts files. */
function importsOf(file: string, text: string): Edge[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const edges: Edge[] = [];
  const add = (specifier: string, typeOnly: boolean) => {
    if (!specifier.startsWith('.')) return;
    const target = path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts');
    edges.push({ from: path.relative(SRC, file), to: path.relative(SRC, target), typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const allTypes =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (!clause.name &&
            named !== undefined &&
            ts.isNamedImports(named) &&
            named.elements.length > 0 &&
            named.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier.text, allTypes);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const named = node.exportClause;
      const allTypes =
        node.isTypeOnly ||
        (named !== undefined &&
          ts.isNamedExports(named) &&
          named.elements.length > 0 &&
          named.elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier.text, allTypes);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node.arguments[0].text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

/** The stage folder of a path relative to src/ ('.' for the root files). */
const folderOf = (rel: string) => (rel.includes(path.sep) ? rel.split(path.sep)[0]! : '.');

const files = sourceFiles(SRC);
const edges = files.flatMap((f) => importsOf(f, readFileSync(f, 'utf8')));
const crossFolder = edges.filter((e) => folderOf(e.from) !== folderOf(e.to));

/** Violations of the stage order: an import from a folder not listed before the importer's. */
function upwardImports(list: Edge[]): string[] {
  const rank = new Map<string, number>(STAGES.map((s, i) => [s, i]));
  const out: string[] = [];
  for (const e of list) {
    const from = folderOf(e.from);
    const to = folderOf(e.to);
    if (from === to) continue;
    if (e.to === 'errors.ts') continue; // the typed errors: importable everywhere
    if (e.from === 'index.ts') continue; // the public barrel re-exports every folder
    const a = rank.get(from);
    const b = rank.get(to);
    if (a === undefined || b === undefined || b >= a) out.push(`${e.from} → ${e.to}`);
  }
  return out;
}

/** Cross-folder imports that reach past a folder's index.ts. */
function deepImports(list: Edge[]): string[] {
  return list
    .filter((e) => folderOf(e.from) !== folderOf(e.to))
    .filter((e) => folderOf(e.to) !== '.' && e.to !== path.join(folderOf(e.to), 'index.ts'))
    .map((e) => `${e.from} → ${e.to}`);
}

/** The runtime import cycles (strongly connected components of more than one file, or a self-import). */
function cycles(list: Edge[]): string[][] {
  const graph = new Map<string, string[]>();
  for (const e of list) {
    if (e.typeOnly) continue;
    graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
  }
  // Tarjan's strongly connected components
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return out;
}

describe('architecture of src/ (src/architecture.ts)', () => {
  it('reads the imports of every source file', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(crossFolder.length).toBeGreaterThan(100);
    // every stage folder exists and is listed once
    const folders = new Set(files.map((f) => folderOf(path.relative(SRC, f))));
    for (const stage of STAGES) expect(folders.has(stage)).toBe(true);
    expect([...folders].filter((f) => f !== '.' && !(STAGES as readonly string[]).includes(f))).toEqual([]);
  });

  it('has no upward import between stage folders', () => {
    expect(upwardImports(edges)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(cycles(edges)).toEqual([]);
  });

  it('enters every folder through its index.ts', () => {
    expect(deepImports(edges)).toEqual([]);
  });

  it('catches each kind of violation (the checks can fail)', () => {
    const e = (from: string, to: string, typeOnly = false): Edge => ({
      from: from.split('/').join(path.sep),
      to: to.split('/').join(path.sep),
      typeOnly,
    });
    expect(upwardImports([e('train/run.ts', 'compare/index.ts')])).toEqual([
      `${e('train/run.ts', '').from} → ${e('', 'compare/index.ts').to}`,
    ]);
    expect(
      upwardImports([e('compare/pipeline.ts', 'train/index.ts'), e('cli/main.ts', 'errors.ts')]),
    ).toEqual([]);
    expect(deepImports([e('compare/pipeline.ts', 'train/run.ts')])).toHaveLength(1);
    expect(
      deepImports([e('compare/pipeline.ts', 'train/index.ts'), e('compare/a.ts', 'compare/b.ts')]),
    ).toEqual([]);
    expect(cycles([e('a/x.ts', 'a/y.ts'), e('a/y.ts', 'a/x.ts')])).toHaveLength(1);
    // a type-only import is erased at runtime: no cycle
    expect(cycles([e('a/x.ts', 'a/y.ts'), e('a/y.ts', 'a/x.ts', true)])).toEqual([]);
    // the parser sees static, type-only, re-exported and dynamic imports
    const parsed = importsOf(
      path.join(SRC, 'cli', 'x.ts'),
      "import { a } from '../io/index.js';\nimport type { B } from '../data/index.js';\nexport * from './y.js';\nconst m = await import('../model/index.js');",
    );
    expect(parsed.map((p) => [p.to, p.typeOnly])).toEqual([
      [path.join('io', 'index.ts'), false],
      [path.join('data', 'index.ts'), true],
      [path.join('cli', 'y.ts'), false],
      [path.join('model', 'index.ts'), false],
    ]);
  });
});
