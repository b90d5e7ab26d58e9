import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCachedFeatures, writeCachedFeatures } from '../../src/embed/cache.js';
import { type FeaturePipeline, loadFeaturePipeline } from '../../src/embed/extractor.js';
import { embedTexts, featureCacheKey, hashTexts, resolveBackbone } from '../../src/embed/index.js';
import { tempDir } from '../util/temp-dir.js';
import { poolRows, readTopics, TINY_BERT_DIR, tinyBertForward } from './reference.js';

const TEXTS = [
  'The soup needs more salt and a little pepper.',
  'It will rain heavily in the north tomorrow!',
  'Our team won.',
  'Xylophones quizzically jostle.',
];

const cacheDir = tempDir('embed-text');
let pipe: FeaturePipeline;

beforeAll(async () => {
  const backbone = await resolveBackbone(TINY_BERT_DIR, { task: 'text' });
  pipe = await loadFeaturePipeline(backbone, { cacheDir });
});

interface Tokens {
  ids: number[][];
  mask: number[][];
  types: number[][];
}

function tokenize(texts: string[]): Tokens {
  const tok = (pipe.tokenizer as (t: string[], o: object) => Record<string, { tolist(): bigint[][] }>)(
    texts,
    {
      padding: true,
      truncation: true,
    },
  );
  const conv = (t: { tolist(): bigint[][] }) => t.tolist().map((r) => r.map(Number));
  return { ids: conv(tok.input_ids!), mask: conv(tok.attention_mask!), types: conv(tok.token_type_ids!) };
}

describe('embedTexts on models/tiny-bert (real pipeline)', () => {
  it('the raw last_hidden_state matches an independent float64 forward pass (|Δ| < 1e-5, float32 rounding; measured 8e-7)', async () => {
    const out = await pipe(TEXTS, { pooling: 'none' });
    const [n, T, H] = out.dims as [number, number, number];
    expect([n, H]).toEqual([TEXTS.length, 32]);
    const tk = tokenize(TEXTS);
    expect(tk.ids[0]!.length).toBe(T);
    // Padding is present in the batch (texts differ in length), so the mask path is exercised.
    expect(tk.mask.some((m) => m.includes(0))).toBe(true);
    let maxErr = 0;
    for (let b = 0; b < n; b++) {
      const ref = tinyBertForward(tk.ids[b]!, tk.mask[b]!, tk.types[b]!);
      for (let t = 0; t < T; t++) {
        if (!tk.mask[b]![t]) continue; // padded positions are never pooled
        for (let j = 0; j < H; j++)
          maxErr = Math.max(maxErr, Math.abs((out.data[(b * T + t) * H + j] as number) - ref[t]![j]!));
      }
    }
    expect(maxErr).toBeLessThan(1e-5);
  });

  it('returns [n, hidden] features; mean and cls pooling match manual pooling of the reference', async () => {
    const tk = tokenize(TEXTS);
    for (const pooling of ['mean', 'cls'] as const) {
      for (const normalize of [false, true]) {
        const e = await embedTexts(TEXTS, { backbone: TINY_BERT_DIR, pooling, normalize, cacheDir: false });
        expect(e.shape).toEqual([TEXTS.length, 32]);
        expect(e.data).toBeInstanceOf(Float32Array);
        expect(e.data.length).toBe(TEXTS.length * 32);
        expect(e.cache).toBe('off');
        for (let b = 0; b < TEXTS.length; b++) {
          const ref = poolRows(
            tinyBertForward(tk.ids[b]!, tk.mask[b]!, tk.types[b]!),
            tk.mask[b]!,
            pooling,
            normalize,
          );
          for (let j = 0; j < 32; j++) expect(Math.abs(e.data[b * 32 + j]! - ref[j]!)).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('mean and cls pooling give different features; normalize gives unit L2 norm', async () => {
    const mean = await embedTexts(TEXTS, {
      backbone: TINY_BERT_DIR,
      pooling: 'mean',
      normalize: true,
      cacheDir: false,
    });
    const cls = await embedTexts(TEXTS, {
      backbone: TINY_BERT_DIR,
      pooling: 'cls',
      normalize: true,
      cacheDir: false,
    });
    const raw = await embedTexts(TEXTS, {
      backbone: TINY_BERT_DIR,
      pooling: 'mean',
      normalize: false,
      cacheDir: false,
    });
    let diff = 0;
    for (let i = 0; i < mean.data.length; i++) diff = Math.max(diff, Math.abs(mean.data[i]! - cls.data[i]!));
    expect(diff).toBeGreaterThan(0.05);
    for (let b = 0; b < TEXTS.length; b++) {
      const norm = (d: Float32Array) => Math.hypot(...d.subarray(b * 32, b * 32 + 32));
      expect(Math.abs(norm(mean.data) - 1)).toBeLessThan(1e-5);
      expect(Math.abs(norm(cls.data) - 1)).toBeLessThan(1e-5);
      expect(Math.abs(norm(raw.data) - 1)).toBeGreaterThan(0.01);
    }
  });

  it('is deterministic: identical bytes across calls; batch composition changes nothing beyond 1e-5', async () => {
    const a = await embedTexts(TEXTS, { backbone: TINY_BERT_DIR, cacheDir: false });
    const b = await embedTexts(TEXTS, { backbone: TINY_BERT_DIR, cacheDir: false });
    expect(Buffer.compare(Buffer.from(a.data.buffer), Buffer.from(b.data.buffer))).toBe(0);
    const single = await embedTexts(TEXTS, { backbone: TINY_BERT_DIR, cacheDir: false, batchSize: 1 });
    for (let i = 0; i < a.data.length; i++) expect(Math.abs(a.data[i]! - single.data[i]!)).toBeLessThan(1e-5);
  });

  it('the vocabulary covers the topics dataset: no [UNK] in any sentence', () => {
    const { texts } = readTopics();
    const tk = tokenize(texts);
    const unk = tk.ids.flat().filter((id) => id === 1).length;
    expect(unk).toBe(0);
    // Every sentence fits in the model's 64 positions.
    expect(Math.max(...tk.mask.map((m) => m.reduce((s, v) => s + v, 0)))).toBeLessThanOrEqual(64);
  });

  it('feature cache: miss, then hit that reads the stored file instead of recomputing', async () => {
    const options = { backbone: TINY_BERT_DIR, cacheDir, pooling: 'mean' as const, normalize: true };
    const first = await embedTexts(TEXTS, options);
    expect(first.cache).toBe('miss');
    expect(first.cacheFile).toMatch(/\.feat$/);
    expect(first.computeSeconds).toBeGreaterThan(0);
    const second = await embedTexts(TEXTS, options);
    expect(second.cache).toBe('hit');
    expect(second.computeSeconds).toBe(0);
    expect(Buffer.compare(Buffer.from(first.data.buffer), Buffer.from(second.data.buffer))).toBe(0);

    // Prove a hit is read from disk: overwrite the entry with different (valid) data under the same key.
    const key = featureCacheKey({
      modelId: 'local',
      revision: first.backbone.revision,
      dtype: 'fp32',
      task: 'text',
      pooling: 'mean',
      normalize: true,
      inputsHash: hashTexts(TEXTS),
    });
    expect(path.basename(first.cacheFile!)).toBe(`${key}.feat`);
    const marker = new Float32Array(first.data.length).fill(0.25);
    await writeCachedFeatures(cacheDir, key, marker, TEXTS.length, 32, {});
    const third = await embedTexts(TEXTS, options);
    expect(third.cache).toBe('hit');
    expect(Array.from(third.data.subarray(0, 3))).toEqual([0.25, 0.25, 0.25]);

    // Any change of settings or inputs is a miss.
    expect((await embedTexts(TEXTS, { ...options, pooling: 'cls' })).cache).toBe('miss');
    expect((await embedTexts(TEXTS, { ...options, normalize: false })).cache).toBe('miss');
    expect((await embedTexts([...TEXTS, 'one more'], options)).cache).toBe('miss');
    expect((await embedTexts(TEXTS.slice().reverse(), options)).cache).toBe('miss');
  });

  it('a corrupt cache entry is detected (checksum) and recomputed', async () => {
    const options = { backbone: TINY_BERT_DIR, cacheDir, pooling: 'cls' as const, normalize: false };
    const texts = ['corrupt cache test', 'second line'];
    const first = await embedTexts(texts, options);
    const { promises: fs } = await import('node:fs');
    const bytes = await fs.readFile(first.cacheFile!);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await fs.writeFile(first.cacheFile!, bytes);
    const key = path.basename(first.cacheFile!, '.feat');
    expect((await readCachedFeatures(cacheDir, key)).status).toBe('corrupt');
    const again = await embedTexts(texts, options);
    expect(again.cache).toBe('recomputed');
    expect(Buffer.compare(Buffer.from(first.data.buffer), Buffer.from(again.data.buffer))).toBe(0);
    expect((await readCachedFeatures(cacheDir, key)).status).toBe('hit');
  });

  it('hashTexts separates boundaries ("ab","c" vs "a","bc")', () => {
    expect(hashTexts(['ab', 'c'])).not.toBe(hashTexts(['a', 'bc']));
  });

  it('rejects bad arguments with the argument named', async () => {
    await expect(embedTexts([], { backbone: TINY_BERT_DIR })).rejects.toThrow(
      /texts: expected a non-empty array/,
    );
    await expect(embedTexts(['a', 3 as unknown as string], { backbone: TINY_BERT_DIR })).rejects.toThrow(
      /texts\[1\]/,
    );
    await expect(embedTexts(['a'], { backbone: TINY_BERT_DIR, pooling: 'max' as 'mean' })).rejects.toThrow(
      /pooling: expected 'mean' or 'cls', received "max"/,
    );
    await expect(embedTexts(['a'], { backbone: TINY_BERT_DIR, batchSize: 0 })).rejects.toThrow(/batchSize/);
  });
});
