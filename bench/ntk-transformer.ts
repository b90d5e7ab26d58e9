/**
 * eNTK benchmark of a whole transformer (issue 15): the full kernel over every parameter of the
 * `transformer-tiny` preset (2 post-LN blocks, width 64, 4 heads, MLP 256, 32 tokens, CLS pooling;
 * embeddings, Q/K/V/O, MLP, LayerNorm γ/β, head) at N = --n (200) WordNet definitions tokenised by
 * models/wordnet-tokenizer, measured in one run:
 *
 *   entk structured   empiricalNtkFn (layer by layer, never forming J), --threads threads
 *   entk jacobian     the whole-model Jacobian path, timed at --jacobian-n points (default N), best
 *                     of --repeats; fewer are extrapolated to N (J ∝ N, J Jᵀ ∝ N², as in
 *                     bench/ntk.ts); target: structured ≥ 20× faster
 *   functorch         the same weights rebuilt in PyTorch (bench/reference/ntk_transformer.py, which
 *                     first checks its logits equal entk's to 1e-5), vmap(jacrev) + einsum per
 *                     parameter tensor; timed best of --repeats after an untimed warm-up run, at
 *                     --functorch-n points (default N), and extrapolated as N² when smaller
 *
 * and checks the kernels agree (structured vs functorch, relative max; structured vs jacobian on the
 * jacobian's points). The weights are the seeded initial ones with every bias, γ and β moved by
 * N(0, 0.1²), so that no parameter sits at a special value. The reference process runs with
 * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset and glibc's huge pages (common.ts referenceEnv).
 *
 * Run through `npm run bench -- --only ntk-transformer`, or:
 *   node bin/run-ts.js bench/ntk-transformer.ts --out f.json
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { loadDataset } from '../src/data/index.js';
import { tokenizeTexts } from '../src/embed/index.js';
import { empiricalNtkFn, type NtkResult, terminateNtkWorkers } from '../src/kernel/index.js';
import { buildModel, resolveModelSpec, type TransformerSpec } from '../src/model/index.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { Rng } from '../src/util/rng.js';
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

const TOKENIZER = 'models/wordnet-tokenizer';
const DATA = 'text/wordnet-glosses.csv';

interface Flags {
  out: string | null;
  n: number;
  jacobianN: number;
  functorchN: number | null;
  threads: number;
  repeats: number;
  skipReference: boolean;
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    out: null,
    n: 200,
    jacobianN: 200,
    functorchN: null,
    threads: 2,
    repeats: 3,
    skipReference: false,
  };
  const num = positiveInt('ntk-transformer');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    if (a === '--out') f.out = next() ?? null;
    else if (a === '--n') f.n = num(next(), a);
    else if (a === '--jacobian-n') f.jacobianN = num(next(), a);
    else if (a === '--functorch-n') f.functorchN = num(next(), a);
    else if (a === '--threads') f.threads = num(next(), a);
    else if (a === '--repeats') f.repeats = num(next(), a);
    else if (a === '--skip-reference') f.skipReference = true;
    else if (a === '--quick') Object.assign(f, { n: 40, jacobianN: 4, repeats: 1 });
    else throw new Error(`bench ntk-transformer: unknown flag ${a} (see npm run bench -- --list)`);
  }
  if (f.functorchN !== null && f.functorchN > f.n) f.functorchN = f.n;
  return f;
}

/** The top-left [n·V, n·V] block of a row-major [N·V, N·V] kernel. */
function leading(k: ArrayLike<number>, NV: number, nV: number): Float64Array {
  const out = new Float64Array(nV * nV);
  for (let r = 0; r < nV; r++) for (let c = 0; c < nV; c++) out[r * nV + c] = k[r * NV + c]!;
  return out;
}

/** n WordNet definitions spread over the file (every class), as token inputs [n, 2L]. */
async function tokenInputs(n: number, L: number) {
  const ds = await loadDataset(DATA);
  const total = ds.ids.length;
  const texts = Array.from(
    { length: n },
    (_, i) => ds.text![Math.floor(((2 * i + 1) * total) / (2 * n)) % total]!,
  );
  return tokenizeTexts(texts, { tokenizer: TOKENIZER, maxLength: L });
}

/** The transformer-tiny preset with seeded weights; biases, γ and β moved by N(0, 0.1²). */
function makeModel(spec: TransformerSpec, vocabSize: number, V: number): tf.LayersModel {
  const model = buildModel(spec, { inputShape: [2 * spec.maxLength], numClasses: V, seed: 0, vocabSize });
  const rng = new Rng(7);
  for (const w of model.weights) {
    if (w.shape.length !== 1) continue;
    const t = tf.tidy(() =>
      tf.add(w.read(), tf.tensor(rng.normalArray(w.shape[0]!, 0.1), w.shape as number[])),
    );
    w.write(t);
    t.dispose();
  }
  return model;
}

async function timeStructured(model: tf.LayersModel, x: tf.Tensor, flags: Flags) {
  const ntk = empiricalNtkFn(model, { threads: flags.threads, progress: false });
  const ms: number[] = [];
  let last: NtkResult | null = null;
  for (let r = 0; r < flags.repeats + 1; r++) {
    const t0 = performance.now();
    last = await ntk(x);
    ms.push(performance.now() - t0);
  }
  ms.shift(); // cold: worker start-up, first compilation of the wasm kernels
  return { bestMs: Math.min(...ms), runsMs: ms, result: last!, rules: ntk.plan.rules };
}

/** Run bench/reference/ntk_transformer.py on the model's weights and nf points; its JSON and K. */
async function runReference(
  model: tf.LayersModel,
  spec: TransformerSpec,
  x: Float32Array,
  nf: number,
  flags: Flags,
) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-ntk-transformer-'));
  try {
    const width = 2 * spec.maxLength;
    const xs = x.subarray(0, nf * width);
    const logits = tf.tidy(() => model.predict(tf.tensor2d(xs, [nf, width])) as tf.Tensor);
    const meta: Record<string, unknown> = {
      spec,
      x: await writeBin(dir, 'x.bin', xs, [nf, width]),
      logits: await writeBin(dir, 'logits.bin', logits.dataSync() as Float32Array, logits.shape),
      weights: {},
    };
    logits.dispose();
    let k = 0;
    for (const layer of model.layers) {
      for (const w of layer.weights) {
        // tfjs names a weight '<layer>/<weight>' (e.g. 'block0/attention/query/kernel'), possibly
        // with a uniquifying suffix: key it by layer name + the weight's own name.
        const own = w.originalName.split('/').pop()!;
        const value = w.read().dataSync() as Float32Array;
        (meta.weights as Record<string, unknown>)[`${layer.name}/${own}`] = await writeBin(
          dir,
          `w${k++}.bin`,
          value,
          w.shape as number[],
        );
      }
    }
    await fs.writeFile(path.join(dir, 'meta.json'), JSON.stringify(meta));
    const kFile = path.join(dir, 'k.bin');
    const args = referenceArgs(dir, flags.threads, flags.repeats, kFile);
    const { code, stdout } = await runPython(path.join(ROOT, 'bench/reference/ntk_transformer.py'), args);
    if (code !== 0 && code !== 2) throw new Error(`ntk_transformer.py exited with ${code}`);
    const result = JSON.parse(stdout) as {
      logitsRelMaxError?: number;
      methods: Record<string, { available: boolean; best_s?: number; reason?: string }>;
    };
    return { ...result, k: code === 0 ? await readBin(kFile) : null };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const info = await initBackend();
  const summary: string[] = [];
  const load = loadAtStart(summary, ' (the ratios are measured in the same run)');
  const spec = resolveModelSpec('transformer-tiny') as TransformerSpec;
  const V = 5;
  const n = flags.n;
  const tokens = await tokenInputs(n, spec.maxLength);
  const width = 2 * spec.maxLength;
  const model = makeModel(spec, tokens.vocabSize, V);
  const xt = tf.tensor2d(tokens.x, [n, width]);
  const s = await timeStructured(model, xt, flags);
  xt.dispose();
  const P = s.result.parameterCount;
  const entry: Record<string, unknown> = {
    n,
    numOutputs: V,
    parameters: P,
    vocabSize: tokens.vocabSize,
    truncated: tokens.truncated,
    spec,
    rules: s.rules.map((r) => `${r.name}:${r.rule}`),
    structured: { bestMs: s.bestMs, runsMs: s.runsMs, timings: s.result.timings, threads: s.result.threads },
  };
  let line = `transformer-tiny N=${n} (P=${P}, V=${V}): entk structured ${fmt(s.bestMs)} (${s.result.threads} threads; features ${fmt(s.result.timings.features ?? 0)})`;

  const nj = Math.min(flags.jacobianN, n);
  const j = await timeJacobian(model, tokens.x, width, nj, n, flags.repeats);
  const jRatio = j.extrapolatedMs / s.bestMs;
  const jDiff = relMax(leading(s.result.data, n * V, nj * V), j.k);
  entry.jacobian = {
    n: j.n,
    ms: j.ms,
    timings: j.timings,
    extrapolatedMs: j.extrapolatedMs,
    runsExtrapolatedMs: j.runsExtrapolatedMs,
  };
  entry.ratioVsJacobian = jRatio;
  entry.relMaxErrorStructuredVsJacobian = jDiff;
  line += `; jacobian N=${nj} ${fmt(j.ms)} → N=${n} ≈ ${fmt(j.extrapolatedMs)}: ${jRatio.toFixed(1)}× faster (target ≥ 20×), K rel. diff ${jDiff.toExponential(1)}`;

  if (!flags.skipReference) {
    const nf = flags.functorchN ?? n;
    const ref = await runReference(model, spec, tokens.x, nf, flags);
    const m = ref.methods.functorch;
    entry.reference = { ...ref, k: undefined };
    if (m?.available && m.best_s !== undefined) {
      const functorchMs = m.best_s * 1000 * (n / nf) ** 2;
      const ratio = functorchMs / s.bestMs;
      const diff = ref.k ? relMax(leading(s.result.data, n * V, nf * V), ref.k) : Number.NaN;
      entry.functorch = { n: nf, ms: m.best_s * 1000, extrapolatedMs: functorchMs };
      entry.ratioVsFunctorch = ratio;
      entry.relMaxErrorVsFunctorch = diff;
      line += `; functorch vmap(jacrev) N=${nf} ${fmt(m.best_s * 1000)}${nf < n ? ` → N=${n} ≈ ${fmt(functorchMs)}` : ''}: ${ratio.toFixed(2)}× faster, K rel. diff ${diff.toExponential(1)} (logits ${ref.logitsRelMaxError?.toExponential(1)})`;
    } else line += `; functorch unavailable: ${m?.reason ?? 'no result'}`;
  }
  summary.push(line);
  console.log(line);
  model.dispose();
  await terminateNtkWorkers();
  const result = {
    benchmark: 'ntk-transformer',
    createdAt: new Date().toISOString(),
    machine: machineInfo(load, info),
    flags,
    case: entry,
    summary,
  };
  if (flags.out) await writeJsonAtomic(flags.out, result);
}

await main();
