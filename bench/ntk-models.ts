/**
 * eNTK benchmark of the networks researchers use (issue 14): the structured path on wide MLPs,
 * CNNs and graphs, against references measured in the same run (ratios are what count on a shared
 * machine).
 *
 *   mlp       'mlp' preset (64→256→256→10), N = --n-mlp (500)    vs NumPy layer-wise (OpenBLAS)
 *   mlp-wide  'mlp-wide' preset (64→2048→2048→10, NTK param.), N = --n-wide (300)  vs NumPy layer-wise
 *   cnn       'cnn' preset (conv16-pool-conv32-pool-dense64), N = --n-cnn (500)    vs functorch vmap(jacrev)
 *   resnet-bn residual CNN with BatchNorm, N = --n-graph (200)                     vs entk's Jacobian path
 *   ln-seq    LayerNorm / Dense-over-sequence block (digits rows as 8 tokens), N = --n-graph   vs Jacobian
 *
 * The Jacobian path is timed at --jacobian-n points (default 200: all N = --n-graph points), best of
 * --repeats; fewer points are extrapolated (J ∝ N, J Jᵀ ∝ N², as in bench/ntk.ts), which magnifies
 * the noise of the small contraction (a 2× spread between runs at N = 32). Every side is timed best
 * of --repeats after an untimed warm-up run. Reference processes run with OPENBLAS_CORETYPE /
 * OPENBLAS_L2_SIZE unset and glibc's huge pages (their faster setting: common.ts referenceEnv).
 * Each case reports its contraction's GFLOP/s as a fraction of two peaks measured in the same run:
 * entk's own wasm SIMD GEMM (what 128-bit WebAssembly can reach) and the machine's (NumPy/OpenBLAS
 * sgemm: AVX-512/AVX2 FMA, bench/reference/sgemm_peak.py).
 * Run through `npm run bench -- --only ntk-models`, or: node bin/run-ts.js bench/ntk-models.ts --out f.json
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { applyStandardization, fitStandardization, loadDataset } from '../src/data/index.js';
import { empiricalNtkFn, type NtkResult, terminateNtkWorkers } from '../src/kernel/index.js';
import { type GemmExports, gemmModule, MR, NR } from '../src/kernel/wasm-gemm.js';
import { buildModel, resolveModelSpec } from '../src/model/index.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { Rng } from '../src/util/rng.js';
import { relaxedSimd, wasmApi } from '../src/util/wasm-asm.js';
import {
  fmt,
  loadAtStart,
  machineInfo,
  positiveInt,
  ROOT,
  readBin,
  referenceArgs,
  relMax,
  runPython,
  timeJacobian,
  writeBin,
} from './common.js';

const CASES = ['mlp', 'mlp-wide', 'cnn', 'resnet-bn', 'ln-seq'] as const;
type Case = (typeof CASES)[number];

interface Flags {
  out: string | null;
  nMlp: number;
  nWide: number;
  nCnn: number;
  nGraph: number;
  jacobianN: number;
  threads: number;
  repeats: number;
  cases: Case[];
  skipReference: boolean;
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    out: null,
    nMlp: 500,
    nWide: 300,
    nCnn: 500,
    nGraph: 200,
    jacobianN: 200,
    threads: 2,
    repeats: 3,
    cases: [...CASES],
    skipReference: false,
  };
  const num = positiveInt('ntk-models');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    if (a === '--out') f.out = next() ?? null;
    else if (a === '--n-mlp') f.nMlp = num(next(), a);
    else if (a === '--n-wide') f.nWide = num(next(), a);
    else if (a === '--n-cnn') f.nCnn = num(next(), a);
    else if (a === '--n-graph') f.nGraph = num(next(), a);
    else if (a === '--jacobian-n') f.jacobianN = num(next(), a);
    else if (a === '--threads') f.threads = num(next(), a);
    else if (a === '--repeats') f.repeats = num(next(), a);
    else if (a === '--skip-reference') f.skipReference = true;
    else if (a === '--cases') {
      const list = (next() ?? '').split(',');
      for (const c of list)
        if (!(CASES as readonly string[]).includes(c)) throw new Error(`bench ntk-models: unknown case ${c}`);
      f.cases = list as Case[];
    } else if (a === '--quick')
      Object.assign(f, { nMlp: 100, nWide: 60, nCnn: 100, nGraph: 40, jacobianN: 4, repeats: 1 });
    else throw new Error(`bench ntk-models: unknown flag ${a} (see npm run bench -- --list)`);
  }
  return f;
}

/** n standardised digits feature vectors (beyond 1797: repeated with N(0, 0.1²) jitter). */
async function digitsPoints(n: number): Promise<Float32Array> {
  const ds = await loadDataset('digits');
  const st = applyStandardization(ds, fitStandardization(ds));
  const total = st.x.length / 64;
  const x = new Float32Array(n * 64);
  const rng = new Rng(1);
  for (let i = 0; i < n; i++) {
    const src = st.x.subarray((i % total) * 64, ((i % total) + 1) * 64);
    for (let k = 0; k < 64; k++) x[i * 64 + k] = src[k]! + (i >= total ? 0.1 * rng.normal() : 0);
  }
  return x;
}

type ST = tf.SymbolicTensor;
const L = tf.layers;

/** Residual CNN with BatchNorm (8×8×1): conv-BN-relu, a residual conv-BN block, avg pool, dense. */
function resnetBn(): tf.LayersModel {
  const x = tf.input({ shape: [64] });
  const img = L.reshape({ targetShape: [8, 8, 1] }).apply(x) as ST;
  const stem = L.activation({ activation: 'relu' }).apply(
    L.batchNormalization().apply(
      L.conv2d({ filters: 16, kernelSize: 3, padding: 'same' }).apply(img) as ST,
    ) as ST,
  ) as ST;
  const c1 = L.activation({ activation: 'relu' }).apply(
    L.batchNormalization().apply(
      L.conv2d({ filters: 16, kernelSize: 3, padding: 'same' }).apply(stem) as ST,
    ) as ST,
  ) as ST;
  const c2 = L.batchNormalization().apply(
    L.conv2d({ filters: 16, kernelSize: 3, padding: 'same' }).apply(c1) as ST,
  ) as ST;
  const s = L.activation({ activation: 'relu' }).apply(L.add().apply([stem, c2]) as ST) as ST;
  const p = L.averagePooling2d({ poolSize: 2 }).apply(s) as ST;
  const out = L.dense({ units: 10 }).apply(L.flatten().apply(p) as ST) as ST;
  return tf.model({ inputs: x, outputs: out });
}

/** Digits rows as 8 tokens of 8 features: dense over positions, LayerNorm, gelu MLP + residual, LN, mean, dense. */
function lnSeq(): tf.LayersModel {
  const x = tf.input({ shape: [64] });
  const seq = L.reshape({ targetShape: [8, 8] }).apply(x) as ST;
  const e = L.dense({ units: 32 }).apply(seq) as ST;
  const n1 = L.layerNormalization().apply(e) as ST;
  const m = L.dense({ units: 32 }).apply(L.dense({ units: 64, activation: 'gelu' }).apply(n1) as ST) as ST;
  const n2 = L.layerNormalization().apply(L.add().apply([e, m]) as ST) as ST;
  const out = L.dense({ units: 10 }).apply(L.globalAveragePooling1d().apply(n2) as ST) as ST;
  return tf.model({ inputs: x, outputs: out });
}

function makeModel(c: Case): tf.LayersModel {
  if (c === 'mlp' || c === 'mlp-wide' || c === 'cnn') {
    return buildModel(resolveModelSpec(c), { inputShape: [64], numClasses: 10, seed: 0 });
  }
  const model = c === 'resnet-bn' ? resnetBn() : lnSeq();
  // Seeded weights (moving variances positive) so that every run sees the same network.
  const rng = new Rng(7);
  for (const w of model.weights) {
    const size = (w.shape as number[]).reduce((a, b) => a * b, 1);
    const values = rng.normalArray(size, 0.3);
    if (/moving_variance/.test(w.name)) for (let k = 0; k < size; k++) values[k] = 1 + Math.abs(values[k]!);
    if (/gamma/.test(w.name)) for (let k = 0; k < size; k++) values[k] = 1 + values[k]!;
    const t = tf.tensor(values, w.shape as number[]);
    w.write(t);
    t.dispose();
  }
  return model;
}

/** Best-of-7 single-thread GFLOP/s of the `gemm` kernel (fused multiply-add variant when `fma`). */
function gemmGflops(fma: boolean): number {
  const module = gemmModule(false, fma);
  if (!module) throw new Error(fma ? 'relaxed SIMD unavailable' : 'WebAssembly SIMD unavailable');
  const [rows, K, cols] = [512, 512, 512];
  const memory = new wasmApi!.Memory({
    initial: Math.ceil((4 * (rows * K + cols * K + rows * cols)) / 65536) + 1,
  });
  const ex = new wasmApi!.Instance(module, { env: { mem: memory } }).exports as unknown as GemmExports;
  const heap = new Float32Array(memory.buffer);
  const rng = new Rng(3);
  heap.set(rng.normalArray(rows * K + cols * K));
  const [ap, bp, cp] = [0, 4 * rows * K, 4 * (rows * K + cols * K)];
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    ex.gemm(ap, bp, K, rows / MR, cols / NR, cp, 4 * cols, 0, 0, 1, 0);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * rows * K * cols) / best / 1e6;
}

/**
 * The float32 peak this run can reach, measured: entk's own WebAssembly SIMD GEMM micro-kernel
 * (wasm-gemm.ts `gemm`, f32x4 multiply + add) on cache-resident 512 × 512 × 512 operands, one
 * thread, best of 7 — times the threads of the run. Measured in the same process as the cases, so
 * machine load affects both alike. Also the fused multiply-add variant (relaxed SIMD, not used by
 * the cases: see gemmModule), where available, to show what FMA would give on this machine.
 */
function measureWasmPeak(threads: number): {
  perThreadGflops: number;
  threads: number;
  peakGflops: number;
  fmaPerThreadGflops: number | null;
} {
  // Interleaved, best of two rounds each: load changes between measurements.
  const fma = relaxedSimd();
  let perThreadGflops = 0;
  let fmaPerThreadGflops: number | null = fma ? 0 : null;
  for (let round = 0; round < 2; round++) {
    perThreadGflops = Math.max(perThreadGflops, gemmGflops(false));
    if (fma) fmaPerThreadGflops = Math.max(fmaPerThreadGflops!, gemmGflops(true));
  }
  return { perThreadGflops, threads, peakGflops: perThreadGflops * threads, fmaPerThreadGflops };
}

/**
 * The machine's float32 peak as reached by the strongest peer here: NumPy's sgemm (OpenBLAS with
 * its own kernel choice: bench/reference/sgemm_peak.py), or null without NumPy.
 */
async function measureMachinePeak(
  threads: number,
): Promise<{ gflops: number; n: number; numpy: string } | null> {
  const { code, stdout } = await runPython(path.join(ROOT, 'bench/reference/sgemm_peak.py'), [
    '--threads',
    String(threads),
  ]).catch(() => ({ code: 1, stdout: '' }));
  return code === 0 ? (JSON.parse(stdout) as { gflops: number; n: number; numpy: string }) : null;
}

/**
 * entk's runs, after a cold run (that also starts the workers): `repeats` pairs of a run into a fresh output
 * array (only the last result is kept, as in a loop over checkpoints) and a run into that result's
 * array (NtkCallOptions.out), interleaved, since the first calls of a function are still warming up
 * (its JavaScript compiled, its threads' buffers grown). Fresh memory costs a page fault per page
 * on first touch (100 MB for a full kernel at N = 500, V = 10), which the NumPy/PyTorch references,
 * freeing their arrays deterministically, largely recycle: both figures are reported.
 */
async function timeStructured(model: tf.LayersModel, x: tf.Tensor, flags: Flags) {
  const ntk = empiricalNtkFn(model, { threads: flags.threads, progress: false });
  let last: NtkResult | undefined;
  const run = async (reuse: boolean) => {
    const out = reuse ? last?.data : undefined;
    last = undefined;
    const t0 = performance.now();
    last = await ntk(x, null, { out });
    return performance.now() - t0;
  };
  await run(false);
  const ms: number[] = [];
  const reusedMs: number[] = [];
  // The best fresh run's phase timings (the figures compared with the references are the fresh ones).
  let timings: Record<string, number> = {};
  for (let r = 0; r < flags.repeats; r++) {
    const t = await run(false);
    if (t < Math.min(...ms)) timings = last!.timings;
    ms.push(t);
    reusedMs.push(await run(true));
  }
  return {
    bestMs: Math.min(...ms),
    runsMs: ms,
    bestReusedMs: Math.min(...reusedMs),
    runsReusedMs: reusedMs,
    timings,
    result: last!,
    rules: ntk.plan.rules,
  };
}

/** A tensor's (or raw values') float32 file for the reference, via writeBin. */
function writeTensor(dir: string, name: string, t: tf.Tensor | Float32Array) {
  return t instanceof Float32Array
    ? writeBin(dir, name, t, [t.length])
    : writeBin(dir, name, t.dataSync() as Float32Array, t.shape);
}

/** Run bench/reference/ntk_models.py on the model's weights; returns its JSON and K. */
async function runReference(c: Case, model: tf.LayersModel, x: Float32Array, n: number, flags: Flags) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-ntk-models-'));
  try {
    const meta: Record<string, unknown> = { kind: c === 'cnn' ? 'cnn' : 'mlp' };
    meta.x = await writeBin(dir, 'x.bin', x.subarray(0, n * 64), [n, 64]);
    const withKernel = model.layers.filter((l) => l.trainableWeights.length > 0);
    if (c === 'cnn') {
      const part = (cls: string) => withKernel.filter((l) => l.getClassName() === cls);
      const dump = async (layers: tf.layers.Layer[], prefix: string) =>
        Promise.all(
          layers.map(async (l, k) => {
            const [w, b] = l.getWeights();
            return {
              kernel: await writeTensor(dir, `${prefix}${k}w.bin`, w!),
              bias: await writeTensor(dir, `${prefix}${k}b.bin`, b!),
            };
          }),
        );
      meta.convs = await dump(part('Conv2D'), 'c');
      meta.denses = await dump(part('Dense'), 'd');
      meta.image = [8, 8, 1];
    } else {
      meta.layers = await Promise.all(
        withKernel.map(async (l, k) => {
          const [w, b] = l.getWeights();
          const r = l as unknown as { weightScale?: number; biasScale?: number };
          return {
            kernel: await writeTensor(dir, `w${k}.bin`, w!),
            bias: await writeTensor(dir, `b${k}.bin`, b!),
            weightScale: r.weightScale ?? 1,
            biasScale: r.biasScale ?? 1,
          };
        }),
      );
    }
    await fs.writeFile(path.join(dir, 'meta.json'), JSON.stringify(meta));
    const kFile = path.join(dir, 'k.bin');
    const args = referenceArgs(dir, flags.threads, flags.repeats, kFile);
    const { code, stdout } = await runPython(path.join(ROOT, 'bench/reference/ntk_models.py'), args);
    if (code !== 0) throw new Error(`ntk_models.py exited with ${code}`);
    const result = JSON.parse(stdout) as {
      methods: Record<string, { available: boolean; best_s?: number; reason?: string }>;
    };
    return { ...result, k: await readBin(kFile) };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The Jacobian path at nj points: time (extrapolated to n) and its agreement with the structured kernel. */
async function jacobianCheck(model: tf.LayersModel, x: Float32Array, nj: number, n: number, repeats: number) {
  const j = await timeJacobian(model, x, 64, nj, n, repeats);
  const xt = tf.tensor2d(x.subarray(0, nj * 64), [nj, 64]);
  const kStructured = await empiricalNtkFn(model, { progress: false })(xt);
  xt.dispose();
  return {
    n: j.n,
    ms: j.ms,
    extrapolatedMs: j.extrapolatedMs,
    runsExtrapolatedMs: j.runsExtrapolatedMs,
    relMaxErrorStructuredVsJacobian: relMax(kStructured.data, j.k),
  };
}

async function runCase(
  c: Case,
  flags: Flags,
  x: Float32Array,
  summary: string[],
  peak: { peakGflops: number },
  machinePeak: number | null,
): Promise<Record<string, unknown>> {
  const n = {
    mlp: flags.nMlp,
    'mlp-wide': flags.nWide,
    cnn: flags.nCnn,
    'resnet-bn': flags.nGraph,
    'ln-seq': flags.nGraph,
  }[c];
  const model = makeModel(c);
  const xt = tf.tensor2d(x.subarray(0, n * 64), [n, 64]);
  const s = await timeStructured(model, xt, flags);
  xt.dispose();
  const entry: Record<string, unknown> = {
    n,
    parameters: s.result.parameterCount,
    rules: s.rules.map((r) => `${r.name}:${r.rule}`),
    structured: {
      bestMs: s.bestMs,
      runsMs: s.runsMs,
      bestReusedMs: s.bestReusedMs,
      runsReusedMs: s.runsReusedMs,
      timings: s.timings,
      threads: s.result.threads,
    },
  };
  // Contraction products only (result.flops); the factor passes' operations are not counted.
  const gflops = (s.result.flops ?? 0) / s.bestMs / 1e6;
  entry.contractionGflopsPerSecond = gflops;
  entry.fractionOfPeak = gflops / peak.peakGflops;
  entry.fractionOfMachinePeak = machinePeak ? gflops / machinePeak : null;
  const ofMachine = machinePeak ? `, ${((100 * gflops) / machinePeak).toFixed(0)}% of the machine's` : '';
  let line = `${c} N=${n} (P=${s.result.parameterCount}): entk structured ${fmt(s.bestMs)}, ${fmt(s.bestReusedMs)} into a reused output (${s.result.threads} threads; features ${fmt(s.timings.features ?? 0)}; ${gflops.toFixed(1)} GFLOP/s = ${((100 * gflops) / peak.peakGflops).toFixed(0)}% of the wasm SIMD peak${ofMachine})`;
  if (c === 'resnet-bn' || c === 'ln-seq') {
    const j = await jacobianCheck(model, x, Math.min(flags.jacobianN, n), n, flags.repeats);
    entry.jacobian = j;
    const ratio = j.extrapolatedMs / s.bestMs;
    entry.ratio = ratio;
    const ratioReused = j.extrapolatedMs / s.bestReusedMs;
    entry.ratioReused = ratioReused;
    line += `; jacobian N=${j.n} ${fmt(j.ms)} → N=${n} ≈ ${fmt(j.extrapolatedMs)}: ${ratio.toFixed(1)}× faster (target ≥ 20×; into a reused output ${ratioReused.toFixed(1)}×), K rel. diff ${j.relMaxErrorStructuredVsJacobian.toExponential(1)}`;
  } else if (!flags.skipReference) {
    const ref = await runReference(c, model, x, n, flags);
    const name = c === 'cnn' ? 'functorch' : 'numpy-layerwise';
    const m = ref.methods[name];
    entry.reference = { ...ref, k: undefined };
    if (m?.available && m.best_s !== undefined) {
      const ratio = (m.best_s * 1000) / s.bestMs;
      entry.ratio = ratio;
      const ratioReused = (m.best_s * 1000) / s.bestReusedMs;
      entry.ratioReused = ratioReused;
      const target = { mlp: 1, 'mlp-wide': 1.5, cnn: 10 }[c as 'mlp' | 'mlp-wide' | 'cnn'];
      const diff = ref.k ? relMax(s.result.data, ref.k) : Number.NaN;
      entry.relMaxErrorVsReference = diff;
      line += `; ${name} ${fmt(m.best_s * 1000)}: ${ratio.toFixed(2)}× faster (target ≥ ${target}×; into a reused output ${ratioReused.toFixed(2)}×), K rel. diff ${diff.toExponential(1)}`;
    } else line += `; ${name} unavailable: ${m?.reason ?? 'no result'}`;
  }
  summary.push(line);
  console.log(line);
  model.dispose();
  return entry;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const info = await initBackend();
  const summary: string[] = [];
  const load = loadAtStart(summary);
  const x = await digitsPoints(Math.max(flags.nMlp, flags.nWide, flags.nCnn, flags.nGraph));
  const cases: Record<string, unknown> = {};
  const peakBefore = measureWasmPeak(flags.threads);
  const machinePeak = await measureMachinePeak(flags.threads);
  for (const c of flags.cases)
    cases[c] = await runCase(c, flags, x, summary, peakBefore, machinePeak?.gflops ?? null);
  const peakAfter = measureWasmPeak(flags.threads);
  summary.push(
    `float32 peak (entk's wasm SIMD GEMM, ${flags.threads} threads): ${peakBefore.peakGflops.toFixed(1)} GFLOP/s before the cases, ${peakAfter.peakGflops.toFixed(1)} after; one thread ${peakBefore.perThreadGflops.toFixed(1)} GFLOP/s, with fused multiply-add (relaxed SIMD) ${peakBefore.fmaPerThreadGflops?.toFixed(1) ?? 'unavailable'}`,
    machinePeak
      ? `the machine's float32 peak (NumPy/OpenBLAS sgemm, 2048³, ${flags.threads} threads): ${machinePeak.gflops.toFixed(1)} GFLOP/s`
      : "the machine's float32 peak: unavailable (no NumPy)",
  );
  await terminateNtkWorkers();
  const result = {
    benchmark: 'ntk-models',
    createdAt: new Date().toISOString(),
    machine: machineInfo(load, info, {
      wasmFloat32Peak: { before: peakBefore, after: peakAfter },
      machineFloat32Peak: machinePeak,
    }),
    flags,
    cases,
    summary,
  };
  if (flags.out) await writeJsonAtomic(flags.out, result);
}

await main();
