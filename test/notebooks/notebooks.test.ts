/**
 * Static checks of the committed notebooks (notebooks/*.ipynb), fast enough for every test run;
 * `npm run notebooks` executes them (minutes). Each notebook must:
 * - be nbformat 4 JSON with the committed tslab kernelspec, and open with a `# Title` markdown cell;
 * - be clean of outputs (unless published deliberately with `metadata.entk.published`);
 * - import only from the public barrel `entk`, from `tslab` and from Node built-ins (`node:*`) —
 *   never from the sources by path, so that notebooks use the library exactly as users do;
 * - import from `entk` only names the barrel (src/index.ts) exports (value imports are checked
 *   against the loaded module, so a renamed or dropped export fails here, not minutes into CI).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as entk from '../../src/index.js';

const notebooksDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../notebooks');
const files = readdirSync(notebooksDir)
  .filter((f) => f.endsWith('.ipynb'))
  .sort();

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: unknown[];
  execution_count?: number | null;
}
interface Notebook {
  nbformat: number;
  metadata: { kernelspec?: { name?: string; language?: string }; entk?: { published?: boolean } };
  cells: Cell[];
}

const text = (cell: Cell) => (Array.isArray(cell.source) ? cell.source.join('') : cell.source);

/** Every `import ... from '<module>'` of a code cell: module, names (value imports) and whether type-only. */
function importsOf(source: string): { module: string; names: string[]; typeOnly: boolean }[] {
  const out: { module: string; names: string[]; typeOnly: boolean }[] = [];
  const re = /^\s*import\s+(type\s+)?([\s\S]*?)\s+from\s+['"]([^'"]+)['"]/gm;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    const clause = m[2]!;
    const braces = /\{([\s\S]*)\}/.exec(clause);
    const names = braces
      ? braces[1]!
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '' && !s.startsWith('type '))
          .map((s) => s.split(/\s+as\s+/)[0]!.trim())
      : [];
    out.push({ module: m[3]!, names, typeOnly: m[1] !== undefined });
  }
  return out;
}

describe('notebook import parsing', () => {
  it('finds value and type imports, skips inline type specifiers and aliases', () => {
    const found = importsOf(
      "import * as tslab from 'tslab';\nimport {\n  a,\n  type B,\n  c as d,\n} from 'entk';\nimport type { E } from 'entk';\nconst x = 1;",
    );
    expect(found).toEqual([
      { module: 'tslab', names: [], typeOnly: false },
      { module: 'entk', names: ['a', 'c'], typeOnly: false },
      { module: 'entk', names: ['E'], typeOnly: true },
    ]);
  });
});

describe('committed notebooks', () => {
  it('exist (at least the four research notebooks)', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  for (const file of files) {
    describe(file, () => {
      const nb = JSON.parse(readFileSync(path.join(notebooksDir, file), 'utf8')) as Notebook;
      const code = nb.cells.filter((c) => c.cell_type === 'code');

      it('is nbformat 4 with the tslab kernelspec and a title cell', () => {
        expect(nb.nbformat).toBe(4);
        expect(nb.metadata.kernelspec?.name).toBe('tslab');
        expect(nb.metadata.kernelspec?.language).toBe('typescript');
        expect(nb.cells[0]?.cell_type).toBe('markdown');
        expect(text(nb.cells[0]!)).toMatch(/^# \S/);
        expect(code.length).toBeGreaterThan(0);
      });

      it('is committed without outputs', () => {
        if (nb.metadata.entk?.published) return;
        const dirty = code.filter((c) => (c.outputs?.length ?? 0) > 0 || c.execution_count != null);
        expect(dirty.length).toBe(0);
      });

      it("imports only from 'entk', 'tslab' and node: built-ins, and only names the barrel exports", () => {
        const imports = code.flatMap((c) => importsOf(text(c)));
        expect(imports.some((i) => i.module === 'entk')).toBe(true);
        for (const i of imports) {
          expect(['entk', 'tslab'].includes(i.module) || i.module.startsWith('node:'), i.module).toBe(true);
        }
        const missing = imports
          .filter((i) => i.module === 'entk' && !i.typeOnly)
          .flatMap((i) => i.names)
          .filter((name) => !(name in entk));
        expect(missing, `not exported by src/index.ts: ${missing.join(', ')}`).toEqual([]);
      });
    });
  }
});
