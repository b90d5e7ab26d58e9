/**
 * `npm run notebooks`: execute every notebook in notebooks/ headless with the tslab TypeScript kernel
 * (type errors in a cell fail the run), writing executed copies to build/notebooks/. The committed
 * notebooks must be clean of outputs. Needs Debian's jupyter-nbconvert, jupyter-client,
 * python3-nbclient and python3-nbformat (see .ci/run).
 *
 *   npm run notebooks                 # all notebooks
 *   npm run notebooks -- quickstart   # those whose file name contains "quickstart"
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const notebooksDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(notebooksDir, '..');
const outDir = path.join(repoRoot, 'build', 'notebooks');
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const filters = process.argv.slice(2);
const timeLimitSeconds = 120;

const notebooks = readdirSync(notebooksDir)
  .filter((f) => f.endsWith('.ipynb'))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (notebooks.length === 0) {
  console.error(`no notebooks matched ${filters.join(', ') || '*.ipynb'} in ${notebooksDir}`);
  process.exit(1);
}
mkdirSync(outDir, { recursive: true });

/** Execute notebook `file` with the tslab kernel through nbconvert; `options` say where to write it. */
function nbconvert(file: string, options: string[]) {
  return spawnSync(
    python,
    [
      '-m',
      'nbconvert',
      '--to',
      'notebook',
      '--execute',
      '--ExecutePreprocessor.kernel_name=tslab',
      `--ExecutePreprocessor.timeout=${timeLimitSeconds}`,
      ...options,
      path.join(notebooksDir, file),
    ],
    {
      cwd: notebooksDir,
      encoding: 'utf8',
      env: { ...process.env, JUPYTER_PATH: path.join(notebooksDir, '.jupyter') },
    },
  );
}

/**
 * tslab reports type errors and exceptions on the cell's stderr, which nbconvert does not print:
 * re-run a failed notebook with --allow-errors and show every cell's stderr/error output.
 */
function cellErrors(file: string): string {
  const copy = path.join(outDir, `failed-${file}`);
  nbconvert(file, ['--allow-errors', '--output', copy]);
  if (!existsSync(copy)) return '(could not re-run the notebook to collect cell errors)';
  const executed = JSON.parse(readFileSync(copy, 'utf8')) as {
    cells: {
      outputs?: { output_type: string; name?: string; text?: string[]; ename?: string; evalue?: string }[];
    }[];
  };
  const lines: string[] = [];
  executed.cells.forEach((cell, index) => {
    for (const out of cell.outputs ?? []) {
      if (out.output_type === 'error') lines.push(`  cell ${index + 1}: ${out.ename}: ${out.evalue}`);
      else if (out.name === 'stderr') lines.push(`  cell ${index + 1}: ${(out.text ?? []).join('').trim()}`);
    }
  });
  return lines.length > 0 ? lines.join('\n') : '(no cell wrote to stderr)';
}

let failed = 0;
for (const file of notebooks) {
  const nb = JSON.parse(readFileSync(path.join(notebooksDir, file), 'utf8')) as {
    cells: { cell_type: string; outputs?: unknown[]; execution_count?: number | null }[];
    metadata?: { entk?: { published?: boolean } };
  };
  const dirty = nb.cells.some((c) => (c.outputs?.length ?? 0) > 0 || c.execution_count != null);
  if (dirty && !nb.metadata?.entk?.published) {
    console.error(`FAIL ${file}: committed with outputs (clear them, or set metadata.entk.published)`);
    failed++;
    continue;
  }
  const start = Date.now();
  const result = nbconvert(file, ['--output-dir', outDir]);
  const seconds = (Date.now() - start) / 1000;
  if (result.status !== 0) {
    console.error(
      `FAIL ${file} (${seconds.toFixed(1)} s)\n${(result.stderr ?? '').split('\n').slice(-15).join('\n')}`,
    );
    console.error(cellErrors(file));
    failed++;
  } else if (seconds > timeLimitSeconds) {
    console.error(`FAIL ${file}: took ${seconds.toFixed(1)} s, over the ${timeLimitSeconds} s budget`);
    failed++;
  } else {
    console.log(
      `ok   ${file} (${seconds.toFixed(1)} s) -> ${path.relative(repoRoot, path.join(outDir, file))}`,
    );
  }
}
console.log(`${notebooks.length - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
