/**
 * POP-ODE benchmark: entk's Dormand–Prince 5(4) integration of the coupled replicator flow (logit
 * form) against SciPy's `solve_ivp(method='RK45')` with the same tolerances, on the same random
 * PSD kernel (written to a temporary .npy that bench/reference/scipy_ode.py reads).
 *
 * Problem (defaults): N = 500 finetune points, M = 100 observation points, V = 10 labels,
 * K = (s/R) J Jᵀ + I with J ~ N(0, 1) of rank R = 64 and s = 20 (a full-rank PSD kernel whose
 * flow moves the probabilities substantially over the horizon), η = 0.05, 400 steps (t ∈ [0, 20]),
 * output at every step. Accuracy of every run is measured against an entk run at rtol = 1e-10.
 *
 * Run alone: `node bin/run-ts.js bench/ode.ts [--quick] [--json]`; from bench/run.ts:
 * `await runOdeBench({ quick })`.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { FitnessOperator, popOde } from '../src/dynamics/index.js';
import { readNpy, writeNpy } from '../src/io/index.js';
import { Rng } from '../src/util/rng.js';
import { referenceEnv } from './common.js';

const run = promisify(execFile);

export interface OdeBenchOptions {
  /** Finetune points. Default 500 (quick: 100). */
  N?: number;
  /** Observation points. Default 100 (quick: 20). */
  M?: number;
  /** Labels. Default 10. */
  V?: number;
  /** Learning rate η of the modelled run (t = n·η). Default 0.05. */
  eta?: number;
  /** Steps (outputs at every step 0..steps). Default 400. */
  steps?: number;
  /** [rtol, atol] pairs. Default [[1e-3, 1e-6] (SciPy's defaults), [1e-6, 1e-9]]. */
  tolerances?: [number, number][];
  /** Small problem for CI smoke runs. Default false. */
  quick?: boolean;
  /** Python interpreter. Default 'python3'. */
  python?: string;
  /** Timed repetitions (best is reported; the first also warms the JIT). Default 2. */
  repeats?: number;
  /** Seed of the random kernel. Default 0. */
  seed?: number;
  /** Also time entk single-threaded and SciPy with OPENBLAS_NUM_THREADS=1. Default true (quick: false). */
  singleThreadRows?: boolean;
  /** Print progress lines to stderr. Default true. */
  verbose?: boolean;
}

interface Row {
  solver: string;
  rtol: number;
  atol: number;
  /** integration wall time, best of the repeats */
  seconds: number;
  /** one-off preparation (kernel reduction/packing, worker start; SciPy: reduced-variant algebra) */
  prepSeconds: number;
  rhsEvaluations: number;
  /** max |log π − log π_ref| over all outputs, points, labels (ref: entk at rtol 1e-10) */
  maxLogProbError: number;
}

function randomKernel(N: number, M: number, V: number, seed: number) {
  const rng = new Rng(seed);
  const R = 64;
  const s = 20;
  const P = N + M;
  const PV = P * V;
  const NV = N * V;
  const J = new Float64Array(PV * R);
  for (let i = 0; i < J.length; i++) J[i] = rng.normal();
  // rows: all tracked points; columns: finetune points. K = (s/R) J Jᵀ + I.
  const K = new Float64Array(PV * NV);
  for (let a = 0; a < PV; a++) {
    const ja = a * R;
    for (let b = 0; b < NV; b++) {
      const jb = b * R;
      let t = 0;
      for (let q = 0; q < R; q++) t += J[ja + q]! * J[jb + q]!;
      K[a * NV + b] = (s / R) * t + (a === b ? 1 : 0);
    }
  }
  const labels = new Int32Array(N);
  for (let u = 0; u < N; u++) labels[u] = rng.int(V);
  const z0 = new Float64Array(P * V);
  for (let i = 0; i < z0.length; i++) z0[i] = rng.normal();
  return { K, labels, z0 };
}

function maxAbs(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Run the benchmark; returns a JSON-serialisable summary (SciPy rows are absent if it is unavailable). */
export async function runOdeBench(opts: OdeBenchOptions = {}): Promise<object> {
  const quick = opts.quick ?? false;
  const N = opts.N ?? (quick ? 100 : 500);
  const M = opts.M ?? (quick ? 20 : 100);
  const V = opts.V ?? 10;
  const eta = opts.eta ?? 0.05;
  const numSteps = opts.steps ?? 400;
  const tolerances = opts.tolerances ?? [
    [1e-3, 1e-6],
    [1e-6, 1e-9],
  ];
  const python = opts.python ?? 'python3';
  const repeats = opts.repeats ?? 2;
  const singleRows = opts.singleThreadRows ?? !quick;
  const log = (msg: string) => {
    if (opts.verbose ?? true) process.stderr.write(`[ode bench] ${msg}\n`);
  };

  const t0 = performance.now();
  const { K, labels, z0 } = randomKernel(N, M, V, opts.seed ?? 0);
  const NV = N * V;
  const train = K.subarray(0, NV * NV);
  const observe = K.subarray(NV * NV);
  log(`kernel ${(N + M) * V}×${NV} generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const steps = Array.from({ length: numSteps + 1 }, (_, k) => k);
  const problem = { numClasses: V, labels, initialLogits: z0 };

  const rows: Row[] = [];
  // One operator per thread mode, prepared once (its preparation time is reported with every row).
  const operators = new Map<number | 'auto', { op: FitnessOperator; prepSeconds: number }>();
  const operatorFor = (threads: number | 'auto') => {
    let entry = operators.get(threads);
    if (!entry) {
      const p0 = performance.now();
      const op = new FitnessOperator({ numClasses: V, train, observe }, { threads });
      entry = { op, prepSeconds: (performance.now() - p0) / 1000 };
      operators.set(threads, entry);
    }
    return entry;
  };
  const entk = (threads: number | 'auto', rtol: number, atol: number, beta?: number) => {
    const { op, prepSeconds } = operatorFor(threads);
    let best = Number.POSITIVE_INFINITY;
    let result: ReturnType<typeof popOde> | undefined;
    for (let r = 0; r < repeats; r++) {
      const t = performance.now();
      result = popOde(op, problem, { learningRate: eta, steps: numSteps, record: steps, rtol, atol, beta });
      best = Math.min(best, (performance.now() - t) / 1000);
    }
    return { result: result!, best, prepSeconds, info: { threads: op.threads, backend: op.backend } };
  };

  log('reference solution (entk, rtol 1e-10, atol 1e-13)');
  const ref = entk('auto', 1e-10, 1e-13).result.trajectory.logProbs;

  // SciPy availability
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'entk-ode-bench-'));
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'reference', 'scipy_ode.py');
  let scipy: string | null = null;
  try {
    const { stdout } = await run(python, ['-c', 'import scipy, numpy; print(scipy.__version__)']);
    scipy = stdout.trim();
  } catch (error) {
    log(`SciPy unavailable: ${(error as Error).message.split('\n')[0]}`);
  }
  const scipyRun = async (variant: string, rtol: number, atol: number, env: NodeJS.ProcessEnv) => {
    const { stdout } = await run(
      python,
      [
        script,
        '--dir',
        dir,
        '--rtol',
        String(rtol),
        '--atol',
        String(atol),
        '--variant',
        variant,
        '--repeats',
        String(repeats),
      ],
      { env: { ...referenceEnv(process.env), ...env }, maxBuffer: 1 << 20 },
    );
    const res = JSON.parse(stdout.trim().split('\n').pop()!) as {
      seconds: number;
      prep_seconds: number;
      nfev: number;
      status: number;
    };
    const logp = (await readNpy(path.join(dir, `logp_${variant}.npy`))).data as Float64Array;
    return { ...res, err: maxAbs(logp, ref) };
  };

  try {
    if (scipy) {
      await writeNpy(path.join(dir, 'kernel.npy'), { dtype: 'float64', shape: [(N + M) * V, NV], data: K });
      await writeNpy(path.join(dir, 'labels.npy'), { dtype: 'int32', shape: [N], data: labels });
      await writeNpy(path.join(dir, 'z0.npy'), { dtype: 'float64', shape: [N + M, V], data: z0 });
      await writeNpy(path.join(dir, 't_eval.npy'), {
        dtype: 'float64',
        shape: [steps.length],
        data: Float64Array.from(steps, (n) => n * eta),
      });
    }
    for (const [rtol, atol] of tolerances) {
      const modes: [number | 'auto', number | undefined][] = [
        ['auto', undefined],
        ['auto', 0],
      ];
      if (singleRows) modes.push([1, undefined]);
      for (const [th, beta] of modes) {
        const e = entk(th, rtol, atol, beta);
        const threads = `${e.info.threads} thread${e.info.threads > 1 ? 's' : ''}`;
        rows.push({
          solver: `entk dopri5 (${e.info.backend}, ${threads}, ${beta === 0 ? 'I control as SciPy' : 'PI control'})`,
          rtol,
          atol,
          seconds: e.best,
          prepSeconds: e.prepSeconds,
          rhsEvaluations: e.result.stats.rhsEvaluations,
          maxLogProbError: maxAbs(e.result.trajectory.logProbs, ref),
        });
        log(JSON.stringify(rows[rows.length - 1]));
      }
      if (!scipy) continue;
      const variants: [string, string, NodeJS.ProcessEnv][] = [
        ['dense', 'scipy RK45, dense K@r (default BLAS threads)', {}],
        ['reduced', 'scipy RK45, reduced + dsymv (default BLAS threads)', {}],
      ];
      if (singleRows)
        variants.push([
          'dense',
          'scipy RK45, dense K@r (1 BLAS thread)',
          { OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' },
        ]);
      for (const [variant, label, env] of variants) {
        const s = await scipyRun(variant, rtol, atol, env);
        rows.push({
          solver: label,
          rtol,
          atol,
          seconds: s.seconds,
          prepSeconds: s.prep_seconds,
          rhsEvaluations: s.nfev,
          maxLogProbError: s.err,
        });
        log(JSON.stringify(rows[rows.length - 1]));
      }
    }
  } finally {
    for (const { op } of operators.values()) op.dispose();
    await fs.rm(dir, { recursive: true, force: true });
  }

  const speedups = tolerances.map(([rtol, atol]) => {
    const ours = rows.find((r) => r.rtol === rtol && r.atol === atol && r.solver.startsWith('entk'));
    const theirs = rows.find(
      (r) => r.rtol === rtol && r.atol === atol && r.solver.startsWith('scipy RK45, dense K@r (default'),
    );
    return {
      rtol,
      atol,
      entkSeconds: ours ? ours.seconds + ours.prepSeconds : null,
      scipySeconds: theirs ? theirs.seconds : null,
      /** SciPy time / entk time including entk's one-off kernel preparation; > 1: entk is faster */
      speedupIncludingPrep: ours && theirs ? theirs.seconds / (ours.seconds + ours.prepSeconds) : null,
      /** SciPy time / entk integration time (the operator is reused by every predictor) */
      speedupIntegration: ours && theirs ? theirs.seconds / ours.seconds : null,
    };
  });
  return {
    name: 'pop-ode',
    problem: {
      N,
      M,
      V,
      eta,
      steps: numSteps,
      tEnd: numSteps * eta,
      outputs: steps.length,
      kernel: `K = (20/64) J Jᵀ + I, J ~ N(0,1) [(N+M)V × 64], seed ${opts.seed ?? 0}`,
    },
    machine: { cores: availableParallelism(), node: process.version },
    scipy: scipy ?? 'unavailable',
    repeats,
    rows,
    speedups,
  };
}

const invokedDirectly =
  process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url;
if (invokedDirectly) {
  const quick = process.argv.includes('--quick');
  const json = process.argv.includes('--json');
  const result = (await runOdeBench({ quick })) as { rows: Row[]; speedups: unknown };
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    for (const r of result.rows) {
      process.stdout.write(
        `${r.solver.padEnd(52)} rtol=${r.rtol.toExponential(0)} time=${r.seconds.toFixed(3)}s prep=${r.prepSeconds.toFixed(3)}s nfev=${r.rhsEvaluations} err=${r.maxLogProbError.toExponential(2)}\n`,
      );
    }
    process.stdout.write(`${JSON.stringify(result.speedups)}\n`);
  }
}
