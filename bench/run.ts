/**
 * Benchmark runner: `npm run bench [-- --only ntk] [-- <benchmark flags>]`.
 *
 * A benchmark is a file in bench/ registered below, of one of two kinds:
 * - a script (`kind: 'script'`) that accepts `--out <file>` plus its own flags and writes one JSON
 *   object there (with a `summary` array of human-readable lines), e.g. bench/ntk.ts;
 * - a module (`kind: 'module'`) exporting `async (options: { quick: boolean }) => object`, e.g.
 *   bench/ode.ts's runOdeBench.
 * The runner starts each in its own Node process (clean memory high-water marks, no shared backend
 * state), passes every flag it does not know to scripts (modules get `quick`), prints the
 * summaries, and stores the JSON as bench/results/<name>.json (latest) and
 * bench/results/<name>-<timestamp>.json (history).
 *
 *   npm run bench                          all benchmarks, default sizes
 *   npm run bench -- --list                list the benchmarks and their flags
 *   npm run bench -- --only ntk --quick    a quick subset (small N, no N = 2000, fewer repeats)
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeJsonAtomic } from '../src/util/atomic.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Benchmark {
  name: string;
  file: string;
  kind: 'script' | 'module';
  /** For modules: the exported benchmark function. */
  exportName?: string;
  description: string;
  flags: string[];
}

/** The registry: add a benchmark by adding a script and a line here. */
const BENCHMARKS: Benchmark[] = [
  {
    name: 'ntk',
    file: 'bench/ntk.ts',
    kind: 'script',
    description:
      'eNTK of MLP 64→256→256→10 on digits: structured vs Jacobian (tfjs wasm) vs PyTorch (functorch vmap(jacrev) + einsum, layer-wise torch, numpy); N = 2000 time and peak memory',
    flags: [
      '--n <N>                points of the full-kernel comparison (default 500)',
      '--large-n <N>          points of the large run, 0 to skip (default 2000)',
      '--threads <T>          contracting threads (default 2 = the cores of the reference machine)',
      '--repeats <R>          timed repetitions, best reported (default 5)',
      '--jacobian-n <a,b>     N of the tfjs Jacobian timings, extrapolated to --n (default 32,64; 0 to skip)',
      '--functorch-n <N>      N of the functorch run, extrapolated to --n as N² (default --n)',
      '--skip-reference       do not run the Python/PyTorch references',
      '--quick                --n 200 --large-n 0 --repeats 1 --jacobian-n 8,16 --functorch-n 100',
    ],
  },
  {
    name: 'ntk-models',
    file: 'bench/ntk-models.ts',
    kind: 'script',
    description:
      "eNTK of the networks researchers use (structured path on graphs): mlp (N=500) and mlp-wide (N=300) vs NumPy layer-wise, cnn (N=500) vs functorch vmap(jacrev), residual CNN with BatchNorm and a LayerNorm sequence block (N=200) vs entk's Jacobian path",
    flags: [
      '--n-mlp <N> --n-wide <N> --n-cnn <N> --n-graph <N>   points per case (500, 300, 500, 200)',
      '--cases <a,b>          subset of mlp, mlp-wide, cnn, resnet-bn, ln-seq',
      '--jacobian-n <N>       points of the Jacobian timing, extrapolated (default 32: the N² part of a smaller timing is amplified too much)',
      '--threads <T>          threads of entk and the references (default 2)',
      '--repeats <R>          timed repetitions, best reported (default 3)',
      '--skip-reference       no Python references',
      '--quick                small N everywhere, one repeat',
    ],
  },
  {
    name: 'ntk-transformer',
    file: 'bench/ntk-transformer.ts',
    kind: 'script',
    description:
      "full eNTK over every parameter of transformer-tiny (2 blocks, width 64, 4 heads, 32 tokens; WordNet definitions, N = 200): entk structured vs entk's Jacobian path (target ≥ 20×) vs functorch vmap(jacrev) on the same weights rebuilt in PyTorch (logits checked to 1e-5 first); kernels compared",
    flags: [
      '--n <N>                points (default 200)',
      '--jacobian-n <N>       points of the Jacobian timing, extrapolated to N (default 32)',
      '--functorch-n <N>      points of the functorch run, extrapolated as N² (default N)',
      '--threads <T>          threads of entk and the reference (default 2)',
      '--repeats <R>          timed repetitions of the structured path, best reported (default 3)',
      '--skip-reference       no Python reference',
      '--quick                --n 40 --jacobian-n 4 --repeats 1',
    ],
  },
  {
    name: 'analysis',
    file: 'bench/analysis.ts',
    kind: 'script',
    description:
      'kernel analysis: top-20 eigenpairs of a 20000² float32 kernel streamed from disk (block Lanczos) vs scipy eigsh in memory; closed-form MSE flow 5000 train / 1000 test vs NumPy eigh',
    flags: [
      '--n <n>                kernel size of the spectrum run (default 20000)',
      '--k <k>                eigenpairs (default 20)',
      '--train <N> --test <M> MSE flow sizes (default 5000, 1000)',
      '--skip-spectrum | --skip-mse',
      '--quick                --n 3000 --train 800 --test 200',
    ],
  },
  {
    name: 'ode',
    file: 'bench/ode.ts',
    kind: 'module',
    exportName: 'runOdeBench',
    description:
      'POP-ODE: entk Dormand–Prince 5(4) vs SciPy solve_ivp(RK45) on the same kernel (dynamics module)',
    flags: ['--quick                smaller problem'],
  },
];

function parse(argv: string[]): {
  only: string[] | null;
  list: boolean;
  child: { module: string; exportName: string; out: string } | null;
  rest: string[];
} {
  let only: string[] | null = null;
  let list = false;
  let childModule: string | null = null;
  let childExport = '';
  let out = '';
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--child-module') childModule = argv[++i] ?? null;
    else if (a === '--child-export') childExport = argv[++i] ?? '';
    else if (a === '--out') out = argv[++i] ?? '';
    else if (a === '--only') only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--only=')) only = a.slice(7).split(',').filter(Boolean);
    else if (a === '--list') list = true;
    else rest.push(a);
  }
  const child = childModule ? { module: childModule, exportName: childExport, out } : null;
  return { only, list, child, rest };
}

/** Child mode for module benchmarks: import, run, write the JSON. */
async function runModuleChild(child: { module: string; exportName: string; out: string }, rest: string[]) {
  const mod = (await import(pathToFileURL(path.resolve(ROOT, child.module)).href)) as Record<string, unknown>;
  const fn = mod[child.exportName];
  if (typeof fn !== 'function')
    throw new Error(`${child.module} does not export a function ${child.exportName}`);
  const result = (await (fn as (o: { quick: boolean }) => Promise<Record<string, unknown>>)({
    quick: rest.includes('--quick'),
  })) as Record<string, unknown>;
  if (!Array.isArray(result.summary)) {
    const brief = result.speedups ?? result.rows ?? result;
    result.summary = [JSON.stringify(brief).slice(0, 2000)];
  }
  await writeJsonAtomic(child.out, result);
}

async function runOne(bench: Benchmark, rest: string[]): Promise<Record<string, unknown>> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), `entk-bench-${bench.name}-`));
  const out = path.join(tmp, 'result.json');
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const args =
        bench.kind === 'script'
          ? [path.join(ROOT, 'bin/run-ts.js'), path.join(ROOT, bench.file), '--out', out, ...rest]
          : [
              path.join(ROOT, 'bin/run-ts.js'),
              path.join(ROOT, 'bench/run.ts'),
              '--child-module',
              bench.file,
              '--child-export',
              bench.exportName!,
              '--out',
              out,
              ...(rest.includes('--quick') ? ['--quick'] : []),
            ];
      const child = spawn(process.execPath, args, {
        cwd: ROOT,
        // entk runs in the environment it was started with, as a user's process does (the
        // references get huge pages: referenceEnv in common.ts).
        stdio: 'inherit',
      });
      child.on('error', reject);
      child.on('exit', (c) => resolve(c ?? 1));
    });
    if (code !== 0) throw new Error(`benchmark ${bench.name} exited with code ${code}`);
    return JSON.parse(await fs.readFile(out, 'utf8')) as Record<string, unknown>;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { only, list, child, rest } = parse(process.argv.slice(2));
  if (child) {
    await runModuleChild(child, rest);
    return;
  }
  if (list) {
    for (const b of BENCHMARKS) {
      console.log(`${b.name}  (${b.file})\n  ${b.description}`);
      for (const f of b.flags) console.log(`    ${f}`);
    }
    return;
  }
  const unknown = (only ?? []).filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) {
    console.error(
      `bench: unknown benchmark(s) ${unknown.join(', ')} (known: ${BENCHMARKS.map((b) => b.name).join(', ')})`,
    );
    process.exit(2);
  }
  const selected = BENCHMARKS.filter((b) => !only || only.includes(b.name));
  const results = path.join(ROOT, 'bench/results');
  for (const bench of selected) {
    console.log(`\n=== ${bench.name}: ${bench.description}`);
    const result = await runOne(bench, rest);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    await writeJsonAtomic(path.join(results, `${bench.name}.json`), result);
    await writeJsonAtomic(path.join(results, `${bench.name}-${stamp}.json`), result);
    console.log(`\n--- ${bench.name} summary`);
    for (const line of (result.summary as string[] | undefined) ?? []) console.log(`  ${line}`);
    console.log(`  (JSON: bench/results/${bench.name}.json)`);
  }
}

await main();
