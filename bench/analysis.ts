/**
 * Kernel-analysis benchmark (issue 17).
 *
 * 1. Spectrum: the top-k eigenpairs of an n × n float32 kernel (default 20000², 1.6 GB) from its
 *    .npy file by entk's block Lanczos (npyKernelMatrix's default, residency 'auto' = 'stream': the
 *    two product threads read their row panels from the file on every pass, memory ≈ one 4 MiB
 *    panel per thread + the Krylov basis; then, for the ratio in the same run, residency 'memory':
 *    read into WebAssembly memory during the first product, later products in place; `--skip-memory`
 *    leaves that run out), against `scipy.sparse.linalg.eigsh(K, k, which='LA')` on the same file loaded
 *    into memory (bench/reference/analysis_ref.py, its own process, OPENBLAS_CORETYPE and
 *    OPENBLAS_L2_SIZE removed from its environment only). Time, peak RSS of each process, max
 *    relative difference of the eigenvalues.
 * 2. MSE prediction: the closed-form MSE flow (mseFlow: one eigen-decomposition, its tridiagonal
 *    reduction and the products with U split over min(2, cores) threads, then outputs at t = 1, 10, ∞)
 *    for --train training and --test test points with V = 10 targets, against the same algebra in
 *    NumPy (numpy.linalg.eigh); time, max relative difference of the test outputs, and the load
 *    average before entk's part and after NumPy's (the machine may be shared).
 *
 * The kernels are seeded PSD matrices K = J diag(exp(−q/40)) Jᵀ (J ~ N(0, 1), rank --rank) written
 * by the reference script. Run: `npm run bench -- --only analysis [--quick]`, or
 * `node bin/run-ts.js bench/analysis.ts --out result.json [flags]`.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mseFlow, npyKernelMatrix, topEigenpairs } from '../src/analysis/index.js';
import { readNpy, writeNpy } from '../src/io/index.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { Rng } from '../src/util/rng.js';
import { defaultPython, ROOT, relMax, runPython } from './common.js';

const SCRIPT = path.join(ROOT, 'bench/reference/analysis_ref.py');

interface Flags {
  out: string | null;
  n: number;
  k: number;
  rank: number;
  train: number;
  test: number;
  python: string;
  skipSpectrum: boolean;
  skipMse: boolean;
  skipMemory: boolean;
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    out: null,
    n: 20000,
    k: 20,
    rank: 400,
    train: 5000,
    test: 1000,
    python: defaultPython(),
    skipSpectrum: false,
    skipMse: false,
    skipMemory: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => Number(argv[++i]);
    if (a === '--out') f.out = argv[++i] ?? null;
    else if (a === '--n') f.n = num();
    else if (a === '--k') f.k = num();
    else if (a === '--rank') f.rank = num();
    else if (a === '--train') f.train = num();
    else if (a === '--test') f.test = num();
    else if (a === '--python') f.python = argv[++i]!;
    else if (a === '--skip-spectrum') f.skipSpectrum = true;
    else if (a === '--skip-mse') f.skipMse = true;
    else if (a === '--skip-memory') f.skipMemory = true;
    else if (a === '--quick') Object.assign(f, { n: 3000, train: 800, test: 200, rank: 200 });
    else throw new Error(`bench/analysis: unknown flag ${a}`);
  }
  return f;
}

/** Run the reference script; returns its last stdout line as JSON. */
async function reference(
  python: string,
  args: string[],
  cleanBlas: boolean,
): Promise<Record<string, unknown>> {
  const { code, stdout } = await runPython(SCRIPT, args, { python, cleanBlas });
  if (code !== 0) throw new Error(`${python} ${SCRIPT} ${args[0]} exited with ${code}`);
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const log = (m: string) => process.stderr.write(`[analysis bench] ${m}\n`);
const seconds = (t0: number) => (performance.now() - t0) / 1000;
const rss = () => process.resourceUsage().maxRSS * 1024;

async function spectrumPart(f: Flags, dir: string) {
  const file = path.join(dir, 'kernel.npy');
  log(`generating a ${f.n}² float32 kernel (rank ${f.rank})`);
  await reference(f.python, ['generate', '--n', String(f.n), '--rank', String(f.rank), '--out', file], false);
  const bytes = (await fs.stat(file)).size;
  const rssBefore = rss();
  log('entk: block Lanczos on the file (default residency: streamed)');
  const t0 = performance.now();
  const matrix = await npyKernelMatrix(file);
  const top = await topEigenpairs(matrix, {
    k: f.k,
    tolerance: 1e-6,
    onPass: (p, r) => log(`  pass ${p}: max residual ${r.toExponential(2)}`),
  });
  const entkSeconds = seconds(t0);
  const entkRss = rss();
  log(
    `entk: ${entkSeconds.toFixed(1)} s, ${top.passes} passes, peak RSS ${(entkRss / 2 ** 20).toFixed(0)} MiB`,
  );
  // The same Lanczos with the kernel held in memory (read during the first product), same run.
  let inMemory: { seconds: number; passes: number; peakRss: number } | null = null;
  if (!f.skipMemory) {
    log('entk: the same, held in memory');
    const t1 = performance.now();
    const s = await topEigenpairs(await npyKernelMatrix(file, { residency: 'memory' }), {
      k: f.k,
      tolerance: 1e-6,
    });
    inMemory = { seconds: seconds(t1), passes: s.passes, peakRss: rss() };
    log(`entk in memory: ${inMemory.seconds.toFixed(1)} s`);
  }
  log('scipy eigsh on the file loaded into memory');
  const scipy = await reference(f.python, ['eigsh', '--file', file, '--k', String(f.k)], true);
  const scipyValues = scipy.eigenvalues as number[];
  const diff = relMax(Array.from(top.values), scipyValues);
  await fs.rm(file, { force: true });
  return {
    n: f.n,
    k: f.k,
    kernelBytes: bytes,
    entk: {
      residency: 'stream',
      seconds: entkSeconds,
      passes: top.passes,
      restarts: top.restarts,
      maxResidual: Math.max(...top.residuals),
      peakRss: entkRss,
      peakRssBeforeSpectrum: rssBefore,
      eigenvalues: Array.from(top.values),
    },
    entkInMemory: inMemory,
    scipy,
    /** scipy total (load + eigsh) / entk (file read included): > 1 means entk is faster */
    speedupVsScipyTotal: (scipy.total_seconds as number) / entkSeconds,
    speedupVsScipyEigshOnly: (scipy.eigsh_seconds as number) / entkSeconds,
    /** scipy total / entk with the kernel held in memory, same run */
    inMemorySpeedupVsScipyTotal: inMemory ? (scipy.total_seconds as number) / inMemory.seconds : null,
    /** memory budget of the issue: kernel size + 1 GiB */
    memoryBudget: bytes + 2 ** 30,
    withinMemoryBudget: entkRss <= bytes + 2 ** 30,
    maxRelativeEigenvalueDifference: diff,
  };
}

async function msePart(f: Flags, dir: string) {
  const P = f.train + f.test;
  const V = 10;
  const file = path.join(dir, 'scalar.npy');
  log(`MSE: generating a ${P}² kernel (${f.train} train + ${f.test} test)`);
  await reference(
    f.python,
    [
      'generate',
      '--n',
      String(P),
      '--rank',
      String(Math.min(P, 2 * f.train)),
      '--out',
      file,
      '--dtype',
      'float64',
    ],
    false,
  );
  const K = (await readNpy(file)).data as Float64Array;
  const N = f.train;
  const M = f.test;
  const trainTrain = new Float64Array(N * N);
  const testTrain = new Float64Array(M * N);
  for (let a = 0; a < N; a++) trainTrain.set(K.subarray(a * P, a * P + N), a * N);
  for (let a = 0; a < M; a++) testTrain.set(K.subarray((N + a) * P, (N + a) * P + N), a * N);
  const rng = new Rng(3);
  const labels = Int32Array.from({ length: N }, () => rng.int(V));
  const y = new Float64Array(N * V);
  labels.forEach((l, u) => {
    y[u * V + l] = 1;
  });
  await writeNpy(path.join(dir, 'train.npy'), { dtype: 'float64', shape: [N, N], data: trainTrain });
  await writeNpy(path.join(dir, 'test.npy'), { dtype: 'float64', shape: [M, N], data: testTrain });
  await writeNpy(path.join(dir, 'y.npy'), { dtype: 'float64', shape: [N, V], data: y });
  const times = [1, 10, Number.POSITIVE_INFINITY];
  log('entk: mseFlow (eigen-decomposition once, then three times)');
  const loadBeforeEntk = os.loadavg();
  const t0 = performance.now();
  const flow = mseFlow({ numClasses: V, trainTrain, testTrain, targets: y });
  const eighSeconds = seconds(t0);
  const t1 = performance.now();
  const outs = times.map((t) => flow.at(t).test);
  const predictSeconds = seconds(t1);
  log(`entk: eigh ${eighSeconds.toFixed(1)} s, predictions ${predictSeconds.toFixed(2)} s`);
  const numpy = await reference(f.python, ['mse', '--dir', dir, '--times', '1,10,inf'], true);
  const diffs: number[] = [];
  for (let k = 0; k < times.length; k++) {
    const ref = (await readNpy(path.join(dir, `numpy_${k}.npy`))).data as Float64Array;
    diffs.push(relMax(outs[k]!, ref));
  }
  const entkTotal = eighSeconds + predictSeconds;
  return {
    train: N,
    test: M,
    V,
    times: ['1', '10', 'inf'],
    entk: {
      eighSeconds,
      predictSeconds,
      totalSeconds: entkTotal,
      threads: Math.min(2, os.availableParallelism()),
    },
    numpy,
    loadAverage: { beforeEntk: loadBeforeEntk, afterNumpy: os.loadavg() },
    /** NumPy total / entk total: > 1 means entk is faster */
    speedupVsNumpy: (numpy.total_seconds as number) / entkTotal,
    maxRelativeDifference: diffs,
  };
}

async function main() {
  const f = parseFlags(process.argv.slice(2));
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-analysis-bench-'));
  try {
    const spectrum = f.skipSpectrum ? null : await spectrumPart(f, dir);
    const mse = f.skipMse ? null : await msePart(f, dir);
    const summary: string[] = [];
    if (spectrum) {
      summary.push(
        `top-${spectrum.k} of ${spectrum.n}² float32 (${(spectrum.kernelBytes / 2 ** 30).toFixed(2)} GiB): entk (${spectrum.entk.residency}) ${spectrum.entk.seconds.toFixed(1)} s (${spectrum.entk.passes} passes, peak RSS ${(spectrum.entk.peakRss / 2 ** 20).toFixed(0)} MiB) vs scipy eigsh ${(spectrum.scipy.total_seconds as number).toFixed(1)} s incl. load (peak RSS ${((spectrum.scipy.peak_rss as number) / 2 ** 20).toFixed(0)} MiB): ratio scipy/entk ${spectrum.speedupVsScipyTotal.toFixed(2)}${spectrum.entkInMemory ? ` (held in memory: ${spectrum.entkInMemory.seconds.toFixed(1)} s, ratio ${spectrum.inMemorySpeedupVsScipyTotal!.toFixed(2)})` : ''}; max rel. eigenvalue diff ${spectrum.maxRelativeEigenvalueDifference.toExponential(1)}`,
      );
    }
    if (mse) {
      summary.push(
        `MSE flow ${mse.train} train / ${mse.test} test: entk ${mse.entk.totalSeconds.toFixed(1)} s (eigh ${mse.entk.eighSeconds.toFixed(1)} s) vs NumPy eigh ${(mse.numpy.total_seconds as number).toFixed(1)} s: ratio numpy/entk ${mse.speedupVsNumpy.toFixed(3)}; max rel. diff ${Math.max(...mse.maxRelativeDifference).toExponential(1)}`,
      );
    }
    const result = {
      name: 'analysis',
      date: new Date().toISOString(),
      machine: { cores: os.availableParallelism(), loadAverage: os.loadavg(), node: process.version },
      spectrum,
      mse,
      summary,
    };
    for (const line of summary) log(line);
    if (f.out) await writeJsonAtomic(f.out, result);
    else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
