/**
 * The eNTK of entk's transformer (src/model/transformer.ts) — run on wasm by
 * transformer-kernel.test.ts and on cpu by transformer-kernel-cpu.test.ts: a structured rule for
 * every parameterised layer (Embedding, LayerNorm, Dense over positions), structured = jacobian =
 * float64 finite differences of an independent float64 transformer (test/model/transformer64.ts),
 * hybrid = structured, padding invariance of the kernel, parameter subsets by name prefix, no
 * tensor left behind.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ruleTestHooks } from '../../src/kernel/analyze.js';
import { empiricalNtkFn } from '../../src/kernel/index.js';
import { buildModel, type TransformerSpec } from '../../src/model/index.js';
import { repad, TINY_POST, TINY_PRE, tokenBatch } from '../model/transformer-fixtures.js';
import { transformerNtk64, weights64 } from '../model/transformer64.js';
import { randomizeWeights, relMaxError } from './helpers.js';

const TOL = 1e-5;

/** The rule each parameterised layer class must get. */
const RULES: Record<string, string> = {
  Embedding: 'embedding-explicit',
  LayerNormalization: 'layernorm',
  Dense: 'dense-explicit',
};

/**
 * With CLS pooling, the last block's layers after its keys and values see cotangents at position 0
 * only: their dense layers are rank-one ('dense-position').
 */
const LAST_BLOCK_ONE_POSITION = /^block1\/(attention\/(query|output)|mlp\/dense[12])$/;

export function transformerKernelSuite(): void {
  describe.each([
    ['post-LN, CLS, token types, pooler (2 blocks)', TINY_POST],
    ['pre-LN, masked mean (1 block)', TINY_PRE],
  ])('%s', (_, spec: TransformerSpec) => {
    let model: tf.LayersModel;
    let x1: tf.Tensor;
    let x2: tf.Tensor;
    const L = spec.maxLength;
    const vocab = spec.vocabSize!;
    const data1 = tokenBatch(3, L, vocab, 31);
    const data2 = tokenBatch(2, L, vocab, 32);
    let before = 0;
    beforeAll(() => {
      model = buildModel(spec, { inputShape: [2 * L], numClasses: 3, seed: 1 });
      randomizeWeights(model, 5, 0.5);
      x1 = tf.tensor(data1, [3, 2 * L]);
      x2 = tf.tensor(data2, [2, 2 * L]);
    });
    afterAll(() => {
      model.dispose();
      tf.dispose([x1, x2]);
    });
    beforeEach(() => {
      before = tf.memory().numTensors;
    });
    afterEach(() => {
      expect(tf.memory().numTensors).toBe(before);
    });

    it('plans a structured rule for every parameterised layer (no autodiff, no Jacobian fallback)', () => {
      const fn = empiricalNtkFn(model, { progress: false });
      expect(fn.plan.implementation).toBe('structured');
      const withWeights = model.layers.filter((l) => l.trainableWeights.length > 0);
      expect(fn.plan.rules.map((r) => r.name).sort()).toEqual(withWeights.map((l) => l.name).sort());
      for (const r of fn.plan.rules) {
        // The head is a Dense on a rank-2 input: its own cheaper rules.
        // The word embedding (13 rows, 6 positions) is kept sparse; the position and token-type
        // tables (no more rows than positions) are contracted dense. TINY_POST has 2 blocks.
        const expected =
          r.name === 'head'
            ? 'dense-identity'
            : r.name === 'pooler'
              ? 'dense-gated'
              : r.name === 'embeddings/word'
                ? 'embedding-sparse'
                : spec.pooling === 'cls' && LAST_BLOCK_ONE_POSITION.test(r.name)
                  ? 'dense-position'
                  : RULES[r.className];
        expect(`${r.name} ${r.rule}`).toBe(`${r.name} ${expected}`);
      }
      expect(fn.plan.parameterCount).toBe(model.countParams());
    });

    it('structured = jacobian = float64 finite differences (symmetric and rectangular; rel. max ≤ 1e-5)', async () => {
      const w = weights64(model);
      const refSym = transformerNtk64(spec, w, data1, 3, data1, 3);
      const refRect = transformerNtk64(spec, w, data1, 3, data2, 2);
      const fn = empiricalNtkFn(model, { progress: false });
      expect(relMaxError((await fn(x1)).data, refSym)).toBeLessThanOrEqual(TOL);
      expect(relMaxError((await fn(x1, x2)).data, refRect)).toBeLessThanOrEqual(TOL);
      const kj = await empiricalNtkFn(model, { implementation: 'jacobian', progress: false })(x1, x2);
      expect(relMaxError(kj.data, refRect)).toBeLessThanOrEqual(TOL);
    });

    it('hybrid (every layer differentiated alone by autodiff) = structured', async () => {
      const structured = await empiricalNtkFn(model, { progress: false })(x1, x2);
      for (const r of structured.rules) ruleTestHooks.autodiff.add(r.name);
      try {
        const fn = empiricalNtkFn(model, { progress: false });
        expect(fn.plan.rules.every((r) => r.rule === 'autodiff')).toBe(true);
        expect(relMaxError((await fn(x1, x2)).data, structured.data)).toBeLessThanOrEqual(TOL);
      } finally {
        ruleTestHooks.autodiff.clear();
      }
    });

    it('padding: other ids at padded positions change no kernel entry (bitwise)', async () => {
      const fn = empiricalNtkFn(model, { progress: false });
      const k = await fn(x1, x2);
      const y1 = tf.tensor(repad(data1, L, vocab, 41), [3, 2 * L]);
      const y2 = tf.tensor(repad(data2, L, vocab, 42), [2, 2 * L]);
      expect(relMaxError(y1.dataSync(), data1)).toBeGreaterThan(0); // the ids did change
      const k2 = await fn(y1, y2);
      tf.dispose([y1, y2]);
      expect(
        Buffer.from((k2.data as Float32Array).buffer).equals(Buffer.from((k.data as Float32Array).buffer)),
      ).toBe(true);
    });

    it("parameter subsets: a name prefix ('block0/') with 'head' = finite differences over those layers", async () => {
      const fn = empiricalNtkFn(model, { parameters: ['block0/', 'head'], progress: false });
      const names = model.layers
        .filter((l) => l.trainableWeights.length > 0 && (l.name.startsWith('block0/') || l.name === 'head'))
        .map((l) => l.name);
      expect(fn.plan.rules.map((r) => r.name).sort()).toEqual([...names].sort());
      const ref = transformerNtk64(spec, weights64(model), data1, 3, data2, 2, names);
      expect(relMaxError((await fn(x1, x2)).data, ref)).toBeLessThanOrEqual(TOL);
      expect(() => empiricalNtkFn(model, { parameters: ['block9/'] })).toThrow(
        /parameters: expected a prefix/,
      );
    });
  });
}
