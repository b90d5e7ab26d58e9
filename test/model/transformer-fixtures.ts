/** Fixtures of the transformer tests (test/model/transformer.test.ts, test/kernel/transformer-suite.ts). */
import type { TransformerSpec } from '../../src/model/index.js';
import { Rng } from '../../src/util/rng.js';

/** A BERT-like tiny spec (post-LN, embedding LN, token types, pooler) and a pre-LN mean-pooling one. */
export const TINY_POST: TransformerSpec = {
  kind: 'transformer',
  layers: 2,
  width: 8,
  heads: 2,
  mlpRatio: 2,
  maxLength: 6,
  vocabSize: 13,
  typeVocabSize: 2,
  norm: 'post',
  embeddingNorm: true,
  pooling: 'cls',
  pooler: true,
  layerNormEpsilon: 1e-12,
  activation: 'gelu',
};
export const TINY_PRE: TransformerSpec = {
  ...TINY_POST,
  layers: 1,
  heads: 4,
  typeVocabSize: 0,
  norm: 'pre',
  embeddingNorm: false,
  pooling: 'mean',
  pooler: false,
  layerNormEpsilon: 1e-5,
};

/**
 * n seeded sequences [n, 2L]: id 2 first (a [CLS]), random ids in [1, vocab), a random number of
 * tokens in [2, L] (the first sequence uses all L), then padding (id `padId`, mask 0).
 */
export function tokenBatch(n: number, L: number, vocab: number, seed: number, padId = 0): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 2 * L);
  for (let s = 0; s < n; s++) {
    const len = s === 0 ? L : 2 + rng.int(L - 1);
    for (let t = 0; t < L; t++) {
      const token = t < len;
      x[s * 2 * L + t] = !token ? padId : t === 0 ? 2 : 1 + rng.int(vocab - 1);
      x[s * 2 * L + L + t] = token ? 1 : 0;
    }
  }
  return x;
}

/** `x` with every padded position's id replaced by a seeded random id. */
export function repad(x: Float32Array, L: number, vocab: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = x.slice();
  for (let s = 0; s < x.length / (2 * L); s++)
    for (let t = 0; t < L; t++) if (out[s * 2 * L + L + t] === 0) out[s * 2 * L + t] = rng.int(vocab);
  return out;
}
