/**
 * eNTK benchmark (issue 3, "Speed it must show"): MLP 64→256→256→10 (the 'mlp' preset, seed 0,
 * ReLU) on standardised digits features.
 *
 * 1. float32 matmul peak of the tfjs backend (one thread), measured in the same run.
 * 2. N = --n (500): the full 5000×5000 kernel by the structured path on 1 and --threads threads
 *    (cold = including the worker start-up, warm = pool running), and by the Jacobian path at small
 *    N extrapolated as a·N + b·N².
 * 3. The same weights and points through bench/reference/ntk_torch.py: functorch vmap(jacrev) +
 *    einsum and a layer-wise PyTorch (or numpy) implementation of the structured algorithm, on
 *    --threads threads; ratios and the max relative difference of the kernels.
 * 4. N = --large-n (2000): a 20000×20000 kernel in a fresh child process: time and peak memory
 *    (process RSS high-water mark, all threads; main-thread wasm heap).
 *
 * Run through `npm run bench` (bench/run.ts), or directly: node bin/run-ts.js bench/ntk.ts --out f.json
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { applyStandardization, fitStandardization, loadDataset } from '../src/data/index.js';
import {
  empiricalNtkFn,
  type NtkContraction,
  type NtkResult,
  terminateNtkWorkers,
} from '../src/kernel/index.js';
import { type GemmExports, gemmModule } from '../src/kernel/wasm-gemm.js';
import { buildModel, resolveModelSpec } from '../src/model/index.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { Rng } from '../src/util/rng.js';
import { wasmApi } from '../src/util/wasm-asm.js';
import { fmt, loadAtStart, machineInfo, ROOT, referenceArgs, relMax, runPython } from './common.js';

interface Flags {
  out: string | null;
  n: number;
  largeN: number;
  threads: number;
  repeats: number;
  jacobianN: number[];
  functorchN: number;
  skipReference: boolean;
  child: string | null;
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    out: null,
    n: 500,
    largeN: 2000,
    threads: 2,
    repeats: 5,
    jacobianN: [32, 64],
    functorchN: 0,
    skipReference: false,
    child: null,
  };
  const num = (v: string | undefined, flag: string) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 0)
      throw new Error(`bench ntk: ${flag} expects a non-negative integer, got ${v}`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    if (a === '--out') f.out = next() ?? null;
    else if (a === '--n') f.n = num(next(), a);
    else if (a === '--large-n') f.largeN = num(next(), a);
    else if (a === '--threads') f.threads = Math.max(1, num(next(), a));
    else if (a === '--repeats') f.repeats = Math.max(1, num(next(), a));
    else if (a === '--jacobian-n')
      f.jacobianN = (next() ?? '')
        .split(',')
        .map((v) => num(v, a))
        .filter((v) => v > 0);
    else if (a === '--functorch-n') f.functorchN = num(next(), a);
    else if (a === '--skip-reference') f.skipReference = true;
    else if (a === '--quick')
      Object.assign(f, { n: 200, largeN: 0, repeats: 1, jacobianN: [8, 16], functorchN: 100 });
    else if (a === '--child') f.child = next() ?? null;
    else throw new Error(`bench ntk: unknown flag ${a} (see npm run bench -- --list)`);
  }
  return f;
}

/** n standardised digits feature vectors (beyond the 1797 digits: repeated with N(0, 0.1²) jitter). */
async function digitsPoints(n: number): Promise<{ x: Float32Array; source: string }> {
  const ds = await loadDataset('digits');
  const st = applyStandardization(ds, fitStandardization(ds));
  const d = 64;
  const total = st.x.length / d;
  const x = new Float32Array(n * d);
  const rng = new Rng(1);
  for (let i = 0; i < n; i++) {
    const src = st.x.subarray((i % total) * d, ((i % total) + 1) * d);
    for (let k = 0; k < d; k++) x[i * d + k] = src[k]! + (i >= total ? 0.1 * rng.normal() : 0);
  }
  const source =
    n <= total
      ? `digits (UCI optdigits, first ${n} of ${total}), standardised`
      : `digits standardised: all ${total} + ${n - total} repeats with N(0, 0.1²) jitter`;
  return { x, source };
}

function makeModel(): tf.LayersModel {
  return buildModel(resolveModelSpec('mlp'), { inputShape: [64], numClasses: 10, seed: 0 });
}

/**
 * float32 matMul peak of the backend on one thread: the best GFLOP/s over repeated 2048³ products
 * and products of the shape the kernel blocks use ([1000, 256] · [256, 1000]); contention on a
 * shared machine only ever lowers a sample, so the maximum is the estimate.
 */
function matmulPeak(): number {
  let best = 0;
  for (const [m, k, n, reps] of [
    [2048, 2048, 2048, 4],
    [1000, 256, 1000, 12],
  ] as const) {
    const a = tf.randomNormal([m, k], 0, 1, 'float32', 1);
    const b = tf.randomNormal([k, n], 0, 1, 'float32', 2);
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync();
      const ms = performance.now() - t0;
      c.dispose();
      if (r > 0) best = Math.max(best, (2 * m * k * n) / (ms / 1000) / 1e9);
    }
    tf.dispose([a, b]);
  }
  return best;
}

/**
 * float32 product peak of entk's own WebAssembly kernel (src/kernel/wasm-gemm.ts, one thread) on the
 * block shape [1000, 256] · [256, 1000]; 0 where WebAssembly SIMD is missing.
 */
function entkGemmPeak(): number {
  const module = gemmModule();
  if (!module || !wasmApi) return 0;
  const [m, k, n] = [1000, 256, 1000];
  const memory = new wasmApi.Memory({ initial: Math.ceil((4 * (m * k + k * n + m * n)) / 65536) + 1 });
  const ex = new wasmApi.Instance(module, { env: { mem: memory } }).exports as unknown as GemmExports;
  const heap = new Float32Array(memory.buffer);
  const rng = new Rng(3);
  for (let i = 0; i < m * k + k * n; i++) heap[i] = rng.normal();
  let best = 0;
  for (let r = 0; r < 12; r++) {
    const t0 = performance.now();
    ex.gemm(0, 4 * m * k, k, m / 4, n / 8, 4 * (m * k + k * n), 4 * n, 0, 0, 1, 0);
    const ms = performance.now() - t0;
    if (r > 0) best = Math.max(best, (2 * m * k * n) / (ms / 1000) / 1e9);
  }
  return best;
}

/**
 * Floating-point work for the MLP (64→256→256→10) on n points, V = 10: the contraction of the plain
 * layer-wise algorithm over the whole kernel (what the PyTorch reference computes: Δ_l Δ_lᵀ of both
 * hidden layers and the three Gram matrices), and the feature passes of entk (forward on the n
 * points, backward from the V logits on the V-fold replicated batch down to the first layer).
 * The contraction entk actually executes is counted by the engine (NtkResult.flops).
 */
function layerwiseFlops(n: number, V: number): { denseContraction: number; features: number } {
  const dims = [64, 256, 256, 10];
  const denseContraction = 2 * (n * V) ** 2 * (256 + 256) + 2 * n * n * (64 + 256 + 256);
  const macs = dims.slice(1).reduce((s, d, i) => s + dims[i]! * d, 0);
  const features = 2 * n * macs + 2 * (n * V) * (256 * 256 + 256 * 10);
  return { denseContraction, features };
}

async function timeStructured(
  x: tf.Tensor,
  threads: number,
  repeats: number,
  contraction: NtkContraction = 'auto',
) {
  const model = makeModel();
  const ntk = empiricalNtkFn(model, { threads, progress: false, contraction });
  const runs: Array<{ ms: number; timings: Record<string, number> }> = [];
  let last: NtkResult | null = null;
  for (let r = 0; r < repeats + (threads > 1 ? 1 : 0); r++) {
    const t0 = performance.now();
    last = await ntk(x);
    runs.push({ ms: performance.now() - t0, timings: last.timings });
  }
  model.dispose();
  const cold = threads > 1 ? runs.shift()! : null;
  const best = Math.min(...runs.map((r) => r.ms));
  return {
    threads,
    bestMs: best,
    runsMs: runs.map((r) => r.ms),
    cold,
    result: last!,
    blockSize: last!.blockSize,
  };
}

async function timeJacobian(points: Float32Array, ns: number[]) {
  const model = makeModel();
  const ntk = empiricalNtkFn(model, { implementation: 'jacobian', progress: false });
  const warm = tf.tensor2d(points.subarray(0, 2 * 64), [2, 64]);
  await ntk(warm); // compile / allocate once before timing
  warm.dispose();
  const out: Array<{ n: number; ms: number; featuresMs: number; contractionMs: number }> = [];
  for (const n of ns) {
    const x = tf.tensor2d(points.subarray(0, n * 64), [n, 64]);
    const t0 = performance.now();
    const k = await ntk(x);
    out.push({
      n,
      ms: performance.now() - t0,
      featuresMs: k.timings.features!,
      contractionMs: k.timings.contraction!,
    });
    x.dispose();
  }
  model.dispose();
  return out;
}

/**
 * Extrapolate the Jacobian path from its largest measurement: J (one backward pass per point and
 * logit) scales as N, the contraction J Jᵀ as N² (the other costs are negligible).
 */
function extrapolate(
  points: Array<{ n: number; ms: number; featuresMs: number; contractionMs: number }>,
  n: number,
) {
  const p = points[points.length - 1];
  if (!p) return null;
  const s = n / p.n;
  return p.featuresMs * s + p.contractionMs * s * s + (p.ms - p.featuresMs - p.contractionMs) * s;
}

async function writeReferenceInputs(dir: string, model: tf.LayersModel, x: Float32Array, n: number) {
  const layers = model.layers.filter((l) => l.getClassName() === 'Dense');
  const meta = {
    n,
    x: { file: 'x.bin', shape: [n, 64] },
    layers: [] as Array<{
      kernel: { file: string; shape: number[] };
      bias: { file: string; shape: number[] };
    }>,
  };
  await fs.writeFile(path.join(dir, 'x.bin'), Buffer.from(x.buffer, x.byteOffset, n * 64 * 4));
  for (const [k, layer] of layers.entries()) {
    const [w, b] = layer.getWeights();
    for (const [name, t] of [
      [`w${k}.bin`, w!],
      [`b${k}.bin`, b!],
    ] as const) {
      const data = t.dataSync() as Float32Array;
      await fs.writeFile(path.join(dir, name), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    meta.layers.push({
      kernel: { file: `w${k}.bin`, shape: w!.shape },
      bias: { file: `b${k}.bin`, shape: b!.shape },
    });
  }
  await fs.writeFile(path.join(dir, 'meta.json'), JSON.stringify(meta));
}

/**
 * The Python to run the references with: ENTK_PYTHON, else the first of /usr/bin/python3 (Debian's,
 * where python3-torch installs) and python3 on PATH that has numpy, preferring one with torch.
 */
function findPython(): { path: string; torch: boolean } | null {
  const candidates = [process.env.ENTK_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string =>
    Boolean(p),
  );
  let fallback: { path: string; torch: boolean } | null = null;
  for (const candidate of candidates) {
    const probe = spawnSync(
      candidate,
      ['-c', 'import numpy, importlib.util as u; print(u.find_spec("torch") is not None)'],
      { encoding: 'utf8' },
    );
    if (probe.error || probe.status !== 0) continue;
    const torch = probe.stdout.trim() === 'True';
    if (torch) return { path: candidate, torch };
    fallback ??= { path: candidate, torch };
  }
  return fallback;
}

interface ReferenceResult {
  available: boolean;
  reason?: string;
  methods?: Record<string, Record<string, number | boolean | string>>;
  relMaxErrorEntkVsReference?: number;
  [key: string]: unknown;
}

async function runReference(
  flags: Flags,
  model: tf.LayersModel,
  x: Float32Array,
  kEntk: Float32Array,
): Promise<ReferenceResult> {
  const python = findPython();
  if (!python) {
    return {
      available: false,
      reason: 'reference unavailable: no python3 with numpy found (ENTK_PYTHON, /usr/bin/python3, python3)',
    };
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-ntk-ref-'));
  try {
    await writeReferenceInputs(dir, model, x, flags.n);
    const kFile = path.join(dir, 'k.bin');
    const args = referenceArgs(dir, flags.threads, flags.repeats, kFile);
    if (flags.functorchN > 0) args.push('--functorch-n', String(flags.functorchN));
    const { code, stdout } = await runPython(path.join(ROOT, 'bench/reference/ntk_torch.py'), args, {
      python: python.path,
      cleanBlas: false,
    });
    if (code !== 0) throw new Error(`ntk_torch.py exited with ${code}`);
    const result = JSON.parse(stdout) as Record<string, unknown>;
    const kRef = new Float32Array((await fs.readFile(kFile)).buffer.slice(0));
    return {
      available: true,
      interpreter: python.path,
      ...result,
      relMaxErrorEntkVsReference: relMax(kEntk, kRef),
    };
  } catch (error) {
    return { available: false, reason: `reference failed: ${(error as Error).message}` };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Child process: one N = largeN kernel (after a tiny warm-up call that starts the worker pool). */
async function largeChild(flags: Flags): Promise<Record<string, unknown>> {
  await initBackend();
  const { x, source } = await digitsPoints(flags.largeN);
  const model = makeModel();
  const ntk = empiricalNtkFn(model, { threads: flags.threads, progress: true });
  const warm = tf.tensor2d(x.subarray(0, 4 * 64), [4, 64]);
  await empiricalNtkFn(model, { threads: flags.threads, progress: false, blockSize: 2 })(warm);
  warm.dispose();
  const xt = tf.tensor2d(x, [flags.largeN, 64]);
  const rssBefore = process.resourceUsage().maxRSS * 1024;
  const t0 = performance.now();
  const k = await ntk(xt);
  const ms = performance.now() - t0;
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const result = {
    n: flags.largeN,
    source,
    threads: k.threads,
    blockSize: k.blockSize,
    ms,
    timings: k.timings,
    kernelBytes: k.data.byteLength,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    rssBeforeBytes: rssBefore,
    mainWasmHeapBytes: backend.wasm?.HEAPU8?.byteLength ?? null,
    checksum: k.data[0]! + k.data[k.data.length - 1]!,
  };
  xt.dispose();
  await terminateNtkWorkers();
  return result;
}

async function runLargeInChild(flags: Flags): Promise<Record<string, unknown>> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-ntk-large-'));
  const out = path.join(dir, 'large.json');
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          path.join(ROOT, 'bin/run-ts.js'),
          path.join(ROOT, 'bench/ntk.ts'),
          '--child',
          'large',
          '--large-n',
          String(flags.largeN),
          '--threads',
          String(flags.threads),
          '--out',
          out,
        ],
        { stdio: 'inherit' },
      );
      child.on('error', reject);
      child.on('exit', (c) => resolve(c ?? 1));
    });
    if (code !== 0) return { available: false, reason: `child exited with code ${code}` };
    return JSON.parse(await fs.readFile(out, 'utf8')) as Record<string, unknown>;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

const GiB = 2 ** 30;

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.child === 'large') {
    const r = await largeChild(flags);
    if (flags.out) await writeJsonAtomic(flags.out, r);
    return;
  }
  const info = await initBackend();
  const summary: string[] = [];
  const load = loadAtStart(summary);
  const machine = machineInfo(load, info);

  // Measured before and after the tfjs runs; the better of the two is the peak (noise only slows).
  const peakBefore = matmulPeak();

  const { x, source } = await digitsPoints(Math.max(flags.n, ...flags.jacobianN));
  const xt = tf.tensor2d(x.subarray(0, flags.n * 64), [flags.n, 64]);
  const single = await timeStructured(xt, 1, flags.repeats);
  const multi = flags.threads > 1 ? await timeStructured(xt, flags.threads, flags.repeats) : null;
  // The same algorithm with tf.matMul products (contraction 'tfjs'), for the gain of entk's kernels.
  const viaTfjs = await timeStructured(xt, 1, Math.min(flags.repeats, 3), 'tfjs');
  await terminateNtkWorkers();
  const tfjsPeak = Math.max(peakBefore, matmulPeak());
  const gemmPeak = entkGemmPeak();
  const peak = Math.max(tfjsPeak, gemmPeak);
  summary.push(
    `float32 matMul peak, 1 thread (best of 1000·256·1000 and 2048³ products): tfjs ${info.backend} ${tfjsPeak.toFixed(1)} GFLOP/s, ` +
      `entk's wasm kernel ${gemmPeak.toFixed(1)} GFLOP/s → peak ${peak.toFixed(1)} GFLOP/s`,
  );
  const V = 10;
  const work = layerwiseFlops(flags.n, V);
  const executed = (single.result.flops ?? 0) + work.features;
  const fraction = (ms: number, threads: number) => executed / (ms / 1000) / 1e9 / (peak * threads);
  summary.push(
    `structured N=${flags.n} (${flags.n * V}×${flags.n * V}): 1 thread ${fmt(single.bestMs)} ` +
      `(${(executed / 1e9).toFixed(2)} GFLOP executed = ${(100 * fraction(single.bestMs, 1)).toFixed(0)}% of peak; ` +
      `the contraction executes ${((100 * (single.result.flops ?? 0)) / work.denseContraction).toFixed(0)}% of the ` +
      `${(work.denseContraction / 1e9).toFixed(1)} GFLOP of the plain layer-wise products: one triangle, gated last layer, inactive units skipped)`,
  );
  if (multi) {
    summary.push(
      `structured N=${flags.n}: ${flags.threads} threads ${fmt(multi.bestMs)} warm ` +
        `(${(100 * fraction(multi.bestMs, flags.threads)).toFixed(0)}% of ${flags.threads}× peak), ` +
        `${fmt(multi.cold!.ms)} cold (incl. worker start-up ${fmt(multi.cold!.timings.workers ?? 0)})`,
    );
  }
  summary.push(
    `structured N=${flags.n}, contraction 'tfjs' (tf.matMul, 1 thread): ${fmt(viaTfjs.bestMs)} → entk's kernels ` +
      `${(viaTfjs.bestMs / single.bestMs).toFixed(1)}× faster`,
  );

  const jac = flags.jacobianN.length > 0 ? await timeJacobian(x, flags.jacobianN) : [];
  const jacAtN = extrapolate(jac, flags.n);
  if (jacAtN !== null) {
    summary.push(
      `jacobian (tfjs, 1 thread): ${jac.map((j) => `N=${j.n} ${fmt(j.ms)}`).join(', ')} → N=${flags.n} ≈ ${fmt(jacAtN)} ` +
        `(extrapolated: J ∝ N, J Jᵀ ∝ N²; structured 1 thread is ${(jacAtN / single.bestMs).toFixed(0)}× faster)`,
    );
  }

  const model = makeModel();
  const reference: ReferenceResult = flags.skipReference
    ? { available: false, reason: 'skipped (--skip-reference)' }
    : await runReference(flags, model, x, single.result.data as Float32Array);
  model.dispose();
  const best = multi ? multi.bestMs : single.bestMs;
  const comparisons: Record<string, unknown> = {};
  if (!reference.available) {
    summary.push(`PyTorch reference unavailable: ${reference.reason}`);
  } else {
    const methods = reference.methods ?? {};
    for (const [name, m] of Object.entries(methods)) {
      if (!m.available) {
        summary.push(`reference ${name} unavailable: ${m.reason}`);
        continue;
      }
      const seconds = (m.extrapolated_best_s as number | undefined) ?? (m.best_s as number);
      const ratio = (seconds * 1000) / best;
      comparisons[name] = {
        seconds,
        ratio,
        measuredN: m.n,
        extrapolated: m.extrapolated_best_s !== undefined,
      };
      summary.push(
        `reference ${name} (${flags.threads} threads, N=${m.n}${m.extrapolated_best_s !== undefined ? ` → ${flags.n} extrapolated` : ''}): ` +
          `${fmt(seconds * 1000)}; entk structured (${multi ? flags.threads : 1} threads) is ${ratio.toFixed(1)}× ${ratio >= 1 ? 'faster' : 'slower'}`,
      );
    }
    summary.push(
      `max relative difference entk vs reference kernel: ${reference.relMaxErrorEntkVsReference?.toExponential(2)}`,
    );
    const blas = [
      reference.torch_matmul_gflops ? `torch ${(reference.torch_matmul_gflops as number).toFixed(0)}` : '',
      reference.numpy_matmul_gflops ? `numpy ${(reference.numpy_matmul_gflops as number).toFixed(0)}` : '',
    ].filter(Boolean);
    if (blas.length > 0) {
      summary.push(
        `reference float32 matMul (2048³, ${flags.threads} threads, OpenBLAS): ${blas.join(', ')} GFLOP/s`,
      );
    }
  }

  let large: Record<string, unknown> | null = null;
  if (flags.largeN > 0) {
    large = await runLargeInChild(flags);
    if (large.available === false) summary.push(`N=${flags.largeN}: failed (${large.reason})`);
    else {
      const peakRss = large.peakRssBytes as number;
      const kernel = large.kernelBytes as number;
      summary.push(
        `structured N=${flags.largeN} (${flags.largeN * V}×${flags.largeN * V}, ${flags.threads} threads): ${fmt(large.ms as number)}; ` +
          `peak RSS ${(peakRss / GiB).toFixed(2)} GiB = kernel ${(kernel / GiB).toFixed(2)} GiB + ${((peakRss - kernel) / GiB).toFixed(2)} GiB ` +
          `(target ≤ kernel + 1 GiB: ${peakRss <= kernel + GiB ? 'met' : 'NOT met'}; < 15 s: ${(large.ms as number) < 15000 ? 'met' : 'NOT met'})`,
      );
    }
  }
  xt.dispose();

  const result = {
    benchmark: 'ntk',
    createdAt: new Date().toISOString(),
    machine,
    model: 'mlp preset: Dense 64→256 relu → Dense 256→256 relu → Dense 256→10 (standard), seed 0',
    data: source,
    flags,
    matmulPeakGflops: peak,
    matmulPeaksGflops: { tfjs: tfjsPeak, entkWasmKernel: gemmPeak },
    matmulPeakNote:
      'one thread, the better of tf.matMul and entk’s wasm kernel; the fraction for T threads divides by T × this',
    structured: {
      n: flags.n,
      blockSize: single.blockSize,
      contraction: single.result.contraction,
      flops: { executedContraction: single.result.flops ?? null, ...work },
      viaTfjs: { bestMs: viaTfjs.bestMs, runsMs: viaTfjs.runsMs, flops: viaTfjs.result.flops ?? null },
      singleThread: { bestMs: single.bestMs, runsMs: single.runsMs, timings: single.result.timings },
      multiThread: multi && {
        threads: flags.threads,
        bestMs: multi.bestMs,
        runsMs: multi.runsMs,
        coldMs: multi.cold!.ms,
        coldTimings: multi.cold!.timings,
        timings: multi.result.timings,
      },
      fractionOfPeak: {
        singleThread: fraction(single.bestMs, 1),
        multiThread: multi ? fraction(multi.bestMs, flags.threads) : null,
      },
    },
    jacobian: { measured: jac, extrapolatedMs: jacAtN },
    reference,
    comparisons,
    large,
    summary,
  };
  if (flags.out) await writeJsonAtomic(flags.out, result);
  for (const line of summary) console.log(line);
}

await main();
