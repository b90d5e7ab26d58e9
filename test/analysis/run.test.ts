import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EigenvalueDecomposition, Matrix, solve } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type AnalysisResults,
  analysisReport,
  analyzeRun,
  symmetricEigen,
} from '../../src/analysis/index.js';
import { dopri5 } from '../../src/dynamics/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  computeKernelStores,
  exportKernelStore,
  listKernelStores,
  readKernelStore,
} from '../../src/kernel-store/index.js';
import { openRun, train } from '../../src/train/index.js';
import { expectOneLineError, runCli } from '../cli/run-cli.js';
import { tempDir } from '../util/temp-dir.js';
import { referenceAlignment } from './helpers.js';

const root = tempDir('analysis-run');
const run = path.join(root, 'run');
const points = 'train:per-class=5,test:9';

beforeAll(async () => {
  await train(
    {
      data: 'iris',
      model: 'mlp-small',
      steps: 30,
      batchSize: 16,
      checkpoints: { steps: [0, 10, 30] },
      seed: 2,
    },
    { outDir: run },
  );
  const r = await openRun(run);
  await computeKernelStores({ run: r, points, name: 'full', checkpoint: 'all' });
  await computeKernelStores({ run: r, points, name: 'trace', kind: 'trace', checkpoint: 'all' });
});

/** tr K(x, x′)/V of a full store, plain loops. */
function scalarOf(data: Float32Array, N: number, V: number): Float64Array {
  const out = new Float64Array(N * N);
  for (let a = 0; a < N; a++)
    for (let b = 0; b < N; b++) {
      let s = 0;
      for (let i = 0; i < V; i++) s += data[(a * V + i) * N * V + b * V + i]!;
      out[a * N + b] = s / V;
    }
  return out;
}

describe('analyzeRun', () => {
  let results: AnalysisResults;
  let dir: string;

  beforeAll(async () => {
    ({ results, dir } = await analyzeRun(run, { points: 'full', k: 6 }));
  });

  it('writes analysis.json and the report; one entry per checkpoint', async () => {
    expect(results.checkpoints.map((c) => c.step)).toEqual([0, 10, 30]);
    expect(results).toMatchObject({
      kernelKind: 'full',
      numPoints: 24,
      numClasses: 3,
      numTrain: 15,
      numTest: 9,
    });
    expect(JSON.parse(await fs.readFile(path.join(dir, 'analysis.json'), 'utf8'))).toEqual(
      JSON.parse(JSON.stringify(results)),
    );
    for (const f of [
      'report.html',
      'results.json',
      'figures/spectrum-over-training.svg',
      'figures/accuracy-over-training.png',
    ])
      expect(existsSync(path.join(dir, f)), f).toBe(true);
  });

  it('spectrum equals a full decomposition of the stored kernel; drift and CKA start at 0 and 1', async () => {
    const stores = (await listKernelStores(run)).filter((s) => s.pointSet === 'full');
    for (const [i, c] of results.checkpoints.entries()) {
      const k = (await readKernelStore(stores[i]!.dir)).kernel.data as Float32Array;
      const eig = symmetricEigen(k, 72).values;
      c.spectrum.top.forEach((l, j) => {
        expect(Math.abs(l - eig[j]!) / eig[0]!).toBeLessThan(1e-9);
      });
    }
    const [first, , last] = results.checkpoints;
    expect(first!.ckaFirst).toBeCloseTo(1, 12);
    expect(first!.driftFromFirst.relativeChange).toBe(0);
    expect(first!.velocity).toBeNull();
    expect(last!.driftFromFirst.relativeChange).toBeGreaterThan(0);
    expect(last!.ckaFirst).toBeLessThan(1);
    expect(last!.velocity).toBeGreaterThan(0);
  });

  it('full store: target alignment and label energy use the target Gram (YYᵀ) ⊗ I_V (plain loops, ml-matrix eigenvectors)', async () => {
    const stores = (await listKernelStores(run)).filter((s) => s.pointSet === 'full');
    const N = 24;
    const V = 3;
    const n = N * V;
    for (const [i, c] of results.checkpoints.entries()) {
      const store = await readKernelStore(stores[i]!.dir);
      const K = Float64Array.from(store.kernel.data as Float32Array);
      const labels = store.labels!.data as Int32Array;
      const T = new Float64Array(n * n);
      for (let u = 0; u < N; u++)
        for (let v = 0; v < N; v++)
          if (labels[u] === labels[v]) for (let j = 0; j < V; j++) T[(u * V + j) * n + v * V + j] = 1;
      // 1e-7: entk centres through uncentred statistics (‖K‖² − (2/n)‖K1‖² + …), which cancels the
      // large constant part of a logit kernel (observed differences ≈ 1e-8; the bug this guards was 0.5)
      expect(Math.abs(c.targetAlignment - referenceAlignment(K, T, n))).toBeLessThan(1e-7);
      // label energy: Σ_{j<k} ‖u_jᵀ Ŷ‖² / ‖Ŷ‖²_F with Ŷ = H (Y ⊗ I_V), columns (class, output)
      const eig = new EigenvalueDecomposition(
        new Matrix(Array.from({ length: n }, (_, r) => Array.from(K.subarray(r * n, r * n + n)))),
        { assumeSymmetric: true },
      );
      const order = eig.realEigenvalues.map((l, j) => [l, j] as const).sort((a, b) => b[0] - a[0]);
      const Y = Array.from({ length: n }, (_, r) =>
        Array.from({ length: V * V }, (_, col): number =>
          col === labels[Math.floor(r / V)]! * V + (r % V) ? 1 : 0,
        ),
      );
      for (let col = 0; col < V * V; col++) {
        const mean = Y.reduce((s, row) => s + row[col]!, 0) / n;
        for (const row of Y) row[col]! -= mean;
      }
      const total = Y.reduce((s, row) => s + row.reduce((a, x) => a + x * x, 0), 0);
      let cumulative = 0;
      c.spectrum.labelEnergy!.forEach((e, k) => {
        const j = order[k]![1];
        for (let col = 0; col < V * V; col++) {
          let p = 0;
          for (let r = 0; r < n; r++) p += eig.eigenvectorMatrix.get(r, j) * Y[r]![col]!;
          cumulative += p * p;
        }
        expect(Math.abs(e - cumulative / total)).toBeLessThan(1e-6);
      });
    }
  });

  it('kernel regression and network accuracy equal an independent computation (ml-matrix solve)', async () => {
    const stores = (await listKernelStores(run)).filter((s) => s.pointSet === 'full');
    const store = await readKernelStore(stores[2]!.dir);
    const N = 24;
    const V = 3;
    const S = scalarOf(store.kernel.data as Float32Array, N, V);
    const labels = store.labels!.data as Int32Array;
    const src = store.manifest.points.sources;
    const tr = src.flatMap((s, i) => (s === 'train' ? [i] : []));
    const te = src.flatMap((s, i) => (s === 'test' ? [i] : []));
    const Ktt = new Matrix(tr.map((a) => tr.map((b) => S[a * N + b]!)));
    const meanDiag = tr.reduce((s, a) => s + S[a * N + a]!, 0) / tr.length;
    for (let i = 0; i < tr.length; i++) Ktt.set(i, i, Ktt.get(i, i) + 1e-3 * meanDiag);
    const Y = new Matrix(tr.map((a) => [0, 1, 2].map((j) => (labels[a] === j ? 1 : 0))));
    const pred = new Matrix(te.map((a) => tr.map((b) => S[a * N + b]!))).mmul(solve(Ktt, Y));
    const argmax = (row: number[]) => row.indexOf(Math.max(...row));
    const krAccuracy = te.filter((a, i) => argmax(pred.getRow(i)) === labels[a]).length / te.length;
    const logits = store.logits!.data as Float32Array;
    const netAccuracy =
      te.filter((a) => argmax(Array.from(logits.subarray(a * V, a * V + V))) === labels[a]).length /
      te.length;
    const p = results.checkpoints[2]!.predictors!;
    expect(p.kernelRegression.testAccuracy).toBe(krAccuracy);
    expect(p.network.testAccuracy).toBe(netAccuracy);
    expect(p.kernelRegression.ridge).toBeCloseTo(1e-3 * meanDiag, 10);
    expect(p.linearized.testLoss).toBeGreaterThan(0);
  });

  it('full store: the linearised network uses the full kernel (float64 plain-loop cross-entropy flow); the report says so', async () => {
    const stores = (await listKernelStores(run)).filter((s) => s.pointSet === 'full');
    const store = await readKernelStore(stores[2]!.dir);
    const N = 24;
    const V = 3;
    const K = store.kernel.data as Float32Array;
    const labels = store.labels!.data as Int32Array;
    const logits = store.logits!.data as Float32Array;
    const src = store.manifest.points.sources;
    const tr = src.flatMap((s, i) => (s === 'train' ? [i] : []));
    const te = src.flatMap((s, i) => (s === 'test' ? [i] : []));
    const pts = [...tr, ...te];
    // ż(α)_i = (1/N_tr) Σ_u Σ_j K((α,i),(u,j)) (e_{y_u} − softmax z_u)_j over the training points u
    const rhs = (_t: number, z: Float64Array, dz: Float64Array) => {
      const r = new Float64Array(tr.length * V);
      tr.forEach((_u, a) => {
        const m = Math.max(...z.subarray(a * V, a * V + V));
        let s = 0;
        for (let j = 0; j < V; j++) s += Math.exp(z[a * V + j]! - m);
        for (let j = 0; j < V; j++)
          r[a * V + j] = (labels[tr[a]!] === j ? 1 : 0) - Math.exp(z[a * V + j]! - m) / s;
      });
      pts.forEach((p, b) => {
        for (let i = 0; i < V; i++) {
          let acc = 0;
          tr.forEach((u, a) => {
            for (let j = 0; j < V; j++) acc += K[(p * V + i) * N * V + u * V + j]! * r[a * V + j]!;
          });
          dz[b * V + i] = acc / tr.length;
        }
      });
    };
    const z0 = Float64Array.from(pts.flatMap((p) => Array.from(logits.subarray(p * V, p * V + V))));
    const z = dopri5(rhs, 0, z0, [10], { rtol: 1e-10, atol: 1e-12 }).y;
    let loss = 0;
    te.forEach((p, b) => {
      const row = z.subarray((tr.length + b) * V, (tr.length + b + 1) * V);
      const m = Math.max(...row);
      const l = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      loss += (l - row[labels[p]!]!) / te.length;
    });
    const p = results.checkpoints[2]!.predictors!;
    expect(p.linearized.kernel).toBe('full');
    expect(Math.abs(p.linearized.testLoss - loss)).toBeLessThan(1e-6 * Math.max(1, loss));
    const html = await fs.readFile(path.join(dir, 'report.html'), 'utf8');
    expect(html).toContain('the network linearised at the checkpoint (its full eNTK)');
  });

  it('report: the participation ratio and the entropy effective rank under their own names (docs/theory.md §Effective rank)', async () => {
    const report = await analysisReport(results);
    const table = report.sections.find((x) => x.id === 'predictors')!.tables![0]!;
    expect(table.columns.map((c) => c.label)).toEqual(
      expect.arrayContaining(['participation ratio', 'effective rank (entropy)']),
    );
    expect(table.columns.map((c) => c.label)).not.toContain('effective rank');
    const c = results.checkpoints[2]!;
    const lambda = symmetricEigen(
      (await readKernelStore((await listKernelStores(run)).filter((s) => s.pointSet === 'full')[2]!.dir))
        .kernel.data as Float32Array,
      72,
    ).values.map((l) => Math.max(l, 0));
    const total = lambda.reduce((a, l) => a + l, 0);
    const entropy = lambda.reduce((a, l) => (l > 0 ? a - (l / total) * Math.log(l / total) : a), 0);
    const row = table.rows[2]!.values;
    expect(Math.abs((row.entropyEffectiveRank as number) - Math.exp(entropy))).toBeLessThan(1e-9);
    const pr = total ** 2 / lambda.reduce((a, l) => a + l * l, 0);
    expect(Math.abs((row.participationRatio as number) - pr) / pr).toBeLessThan(1e-6);
    expect(c.spectrum.participationRatio).toBe(row.participationRatio);
    // an analysis.json written before the field existed (effectiveRank only) still renders
    const old = structuredClone(results);
    for (const x of old.checkpoints) delete (x.spectrum as Partial<typeof x.spectrum>).participationRatio;
    const oldRow = (await analysisReport(old)).sections.find((x) => x.id === 'predictors')!.tables![0]!
      .rows[2]!;
    expect(oldRow.values.participationRatio).toBe(row.participationRatio);
  });

  it('full store whose blocks exceed half the memory budget: the scalar-kernel flow, labelled as such', async () => {
    // blocks of 15 train + 9 test points, V = 3: 2 · 8 B · 45 · 72 = 51840 B > 60000 / 2
    const saved = process.env.ENTK_MEMORY_BYTES;
    const messages: string[] = [];
    let small: AnalysisResults;
    try {
      process.env.ENTK_MEMORY_BYTES = '60000';
      ({ results: small } = await analyzeRun(run, {
        points: 'full',
        k: 6,
        report: false,
        out: path.join(root, 'small-budget'),
        log: (m) => messages.push(m),
      }));
    } finally {
      if (saved === undefined) delete process.env.ENTK_MEMORY_BYTES;
      else process.env.ENTK_MEMORY_BYTES = saved;
    }
    expect(small.checkpoints.every((c) => c.predictors!.linearized.kernel === 'scalar')).toBe(true);
    expect(messages.some((m) => m.includes('need 51.8 kB; using tr K/V ⊗ I_V'))).toBe(true);
    // the same flow as the trace store's (float32 trace vs tr/V of the float32 full store)
    const trace = await analyzeRun(run, { points: 'trace', k: 6, report: false, out: path.join(root, 'a6') });
    small.checkpoints.forEach((c, i) => {
      expect(
        Math.abs(
          c.predictors!.linearized.testLoss - trace.results.checkpoints[i]!.predictors!.linearized.testLoss,
        ),
      ).toBeLessThan(1e-4);
    });
  });

  it('a trace store gives the same scalar-kernel measures; Lanczos agrees with the full decomposition', async () => {
    const trace = await analyzeRun(run, {
      points: 'trace',
      k: 6,
      report: false,
      method: 'lanczos',
      out: path.join(root, 'a2'),
    });
    expect(existsSync(path.join(root, 'a2', 'report.html'))).toBe(false);
    const full = await analyzeRun(run, {
      points: 'trace',
      k: 6,
      report: false,
      method: 'full',
      out: path.join(root, 'a3'),
    });
    trace.results.checkpoints.forEach((c, i) => {
      const f = full.results.checkpoints[i]!;
      c.spectrum.top.forEach(async (l, j) => {
        expect(Math.abs(l - f.spectrum.top[j]!) / f.spectrum.top[0]!).toBeLessThan(1e-6);
      });
      const viaFull = results.checkpoints[i]!;
      // float32 trace store vs tr/V of the float32 full store
      expect(Math.abs(c.ckaFirst - viaFull.ckaFirst)).toBeLessThan(1e-5);
      expect(Math.abs(c.scalarTargetAlignment - viaFull.scalarTargetAlignment)).toBeLessThan(1e-5);
      expect(c.predictors!.kernelRegression.testAccuracy).toBe(
        viaFull.predictors!.kernelRegression.testAccuracy,
      );
      expect(c.predictors!.linearized.kernel).toBe('scalar');
    });
    const report = await analysisReport(trace.results);
    const caption = report.sections.find((x) => x.id === 'predictors')!.tables![0]!.caption;
    expect(caption).toContain('the scalar-kernel approximation of the network linearised at the checkpoint');
  });

  it('per-layer contributions: traces sum to the stored trace kernel, the report shows them', async () => {
    const { results: withLayers, report } = await analyzeRun(run, {
      points: 'trace',
      k: 4,
      layers: true,
      out: path.join(root, 'layers'),
    });
    const stores = (await listKernelStores(run)).filter((s) => s.pointSet === 'trace');
    for (const [i, c] of withLayers.checkpoints.entries()) {
      const stored = await readKernelStore(stores[i]!.dir);
      const N = stored.manifest.points.count;
      let trace = 0;
      for (let a = 0; a < N; a++) trace += (stored.kernel!.data as Float32Array)[a * N + a]!;
      const layers = c.layers!.layers;
      expect(layers.map((l) => l.name)).toEqual(stored.manifest.kernel.layers);
      expect(layers.length).toBeGreaterThan(1);
      const sum = layers.reduce((s, l) => s + l.trace, 0);
      // float64 per-layer contractions vs the float32 stored kernel
      expect(Math.abs(sum - trace) / trace).toBeLessThan(1e-5);
      expect(Math.abs(c.layers!.total.trace - trace) / trace).toBeLessThan(1e-5);
      expect(Math.abs(layers.reduce((s, l) => s + l.traceShare, 0) - 1)).toBeLessThan(1e-12);
      expect(Math.abs(c.layers!.total.targetAlignment - c.scalarTargetAlignment)).toBeLessThan(1e-5);
      // each layer's kernel J_l J_lᵀ is PSD: its centred alignment with YYᵀ lies in [0, 1]
      for (const l of layers) {
        expect(l.targetAlignment).toBeGreaterThanOrEqual(0);
        expect(l.targetAlignment).toBeLessThanOrEqual(1);
      }
    }
    const html = await fs.readFile(report!, 'utf8');
    expect(html).toContain('Per-layer contributions');
    expect(existsSync(path.join(root, 'layers', 'figures', 'layer-trace-share-over-training.svg'))).toBe(
      true,
    );
  });

  it('a store in another array format (safetensors) gives the same analysis as the .npy store', async () => {
    const stores = (await listKernelStores(run)).filter((s) => s.pointSet === 'trace');
    for (const s of stores) {
      await exportKernelStore(s.dir, {
        format: 'safetensors',
        out: path.join(root, 'exported', 'trace', s.checkpointId),
      });
    }
    const options = { points: 'trace', k: 6, report: false } as const;
    const a = await analyzeRun(path.join(root, 'exported'), { ...options, out: path.join(root, 'a4') });
    const b = await analyzeRun(run, { ...options, out: path.join(root, 'a5') });
    expect(a.results.checkpoints).toEqual(b.results.checkpoints);
  });

  it('unknown point set: InvalidArgumentError naming the sets', async () => {
    await expect(analyzeRun(run, { points: 'nope' })).rejects.toThrow(InvalidArgumentError);
    await expect(analyzeRun(run, { points: 'nope' })).rejects.toThrow(/full, trace/);
    await expect(analyzeRun(run)).rejects.toThrow(/points/);
  });
});

describe('entk analyze', async () => {
  it('--json prints the results; the report is written', async () => {
    const out = path.join(root, 'cli');
    const r = await runCli([
      'analyze',
      '--run',
      run,
      '--points',
      'trace',
      '--k',
      '4',
      '--out',
      out,
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json.checkpoints).toHaveLength(3);
    expect(json.checkpoints[0].spectrum.top).toHaveLength(4);
    expect(json.report).toBe(path.resolve(out, 'report.html'));
  });

  it('--layers prints the per-layer contributions of the last checkpoint', async () => {
    const r = await runCli([
      'analyze',
      '--run',
      run,
      '--points',
      'trace',
      '--k',
      '4',
      '--layers',
      '--no-report',
      '--out',
      path.join(root, 'cli-layers'),
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/per-layer contributions at .* \(share of tr K, target alignment\)/);
    const json = JSON.parse(await fs.readFile(path.join(root, 'cli-layers', 'analysis.json'), 'utf8'));
    const shares = json.checkpoints[2].layers.layers.map((l: { traceShare: number }) => l.traceShare);
    expect(Math.abs(shares.reduce((a: number, b: number) => a + b, 0) - 1)).toBeLessThan(1e-12);
  });

  it('bad flags: one-line errors', async () => {
    expectOneLineError(
      await runCli(['analyze', '--run', run, '--points', 'nope']),
      /points: expected one of the run's point sets/,
    );
    expectOneLineError(await runCli(['analyze', '--run', run, '--ridge', '-1']), /--ridge/);
    expectOneLineError(await runCli(['analyze']), /--run/);
    expectOneLineError(await runCli(['analyze', '--run', run, '--logits', 'probs']), /--logits/);
  });
});
