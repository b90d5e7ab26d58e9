import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/index.js';
import {
  addBackboneOptions,
  backboneConfigFromCli,
  embedDataset,
  embedTexts,
  parseBackboneConfig,
} from '../../src/embed/index.js';
import { tempDir } from '../util/temp-dir.js';
import { TINY_BERT_DIR } from './reference.js';

const cacheDir = tempDir('embed-dataset');

describe('embedDataset', () => {
  it('turns data/text/topics.csv into a [300, 32] feature dataset, keeping ids, labels and order', async () => {
    const text = await loadDataset('text/topics.csv', { textColumn: 'text' });
    expect(text.text).toHaveLength(300);
    const { dataset, embeddings } = await embedDataset(text, { backbone: TINY_BERT_DIR, cacheDir });
    expect(embeddings.cache).toBe('miss');
    expect(dataset.inputShape).toEqual([32]);
    expect(dataset.x.length).toBe(300 * 32);
    expect(dataset.ids).toEqual(text.ids);
    expect(Array.from(dataset.y)).toEqual(Array.from(text.y));
    expect(dataset.classNames).toEqual(['food', 'sport', 'weather']);
    expect(dataset.featureNames).toEqual(Array.from({ length: 32 }, (_, j) => `emb_${j}`));
    expect(dataset.text).toEqual(text.text);
    // Row i is the embedding of text i (same as embedding it on its own, to float32 rounding).
    const one = await embedTexts([text.text![7]!], { backbone: TINY_BERT_DIR, cacheDir: false });
    for (let j = 0; j < 32; j++) expect(Math.abs(dataset.x[7 * 32 + j]! - one.data[j]!)).toBeLessThan(1e-5);
    // A second run (e.g. openRun re-creating the run's data) is a cache hit.
    const again = await embedDataset(text, { backbone: TINY_BERT_DIR, cacheDir });
    expect(again.embeddings.cache).toBe('hit');
    expect(Array.from(again.dataset.x)).toEqual(Array.from(dataset.x));
  });

  it('features carry label information: 5-fold ridge classifier accuracy > 0.45 (chance 1/3; measured 0.56)', async () => {
    // Closed-form ridge regression onto one-hot labels in float64. The backbone is random (not
    // pretrained), so it can only exploit words shared between train and test sentences.
    const text = await loadDataset('text/topics.csv', { textColumn: 'text' });
    const { dataset } = await embedDataset(text, { backbone: TINY_BERT_DIR, cacheDir });
    const h = 32;
    const d = h + 1; // features + bias
    const row = (i: number) => [...Array.from(dataset.x.subarray(i * h, i * h + h)), 1];
    let accuracy = 0;
    for (let fold = 0; fold < 5; fold++) {
      const all = dataset.ids.map((_, i) => i);
      const trainIdx = all.filter((i) => i % 5 !== fold);
      const testIdx = all.filter((i) => i % 5 === fold);
      const A = Array.from({ length: d }, () => new Float64Array(d));
      const B = Array.from({ length: d }, () => new Float64Array(3));
      for (const i of trainIdx) {
        const r = row(i);
        for (let a = 0; a < d; a++) {
          for (let b = 0; b < d; b++) A[a]![b]! += r[a]! * r[b]!;
          B[a]![dataset.y[i]!]! += r[a]!;
        }
      }
      for (let a = 0; a < d; a++) A[a]![a]! += 1e-2;
      // Gauss–Jordan elimination: afterwards W[a][k] = B[a][k] / A[a][a].
      for (let c = 0; c < d; c++) {
        const p = A[c]![c]!;
        for (let r = 0; r < d; r++) {
          if (r === c) continue;
          const f = A[r]![c]! / p;
          for (let k = 0; k < d; k++) A[r]![k]! -= f * A[c]![k]!;
          for (let k = 0; k < 3; k++) B[r]![k]! -= f * B[c]![k]!;
        }
      }
      let correct = 0;
      for (const i of testIdx) {
        const r = row(i);
        const scores = [0, 1, 2].map((k) => r.reduce((s, v, a) => s + (v * B[a]![k]!) / A[a]![a]!, 0));
        if (scores.indexOf(Math.max(...scores)) === dataset.y[i]) correct++;
      }
      accuracy += correct / testIdx.length / 5;
    }
    expect(accuracy).toBeGreaterThan(0.45);
  });

  it('rejects a dataset without text', async () => {
    const iris = await loadDataset('iris');
    await expect(embedDataset(iris, { backbone: TINY_BERT_DIR })).rejects.toThrow(
      /dataset: expected a text dataset \(load the CSV\/JSONL with a text column/,
    );
  });
});

describe('backbone config and CLI flags', () => {
  it('parseBackboneConfig fills defaults and names bad fields', () => {
    expect(parseBackboneConfig({ backbone: 'models/tiny-bert' })).toEqual({
      backbone: 'models/tiny-bert',
      pooling: 'mean',
      normalize: true,
      dtype: 'fp32',
      revision: 'main',
      allowRemote: false,
    });
    expect(() => parseBackboneConfig({ backbone: 'x', pooling: 'max' })).toThrow(
      /backbone config.pooling: expected .*received "max"/,
    );
    expect(() => parseBackboneConfig({ backbone: 'x', extra: 1 })).toThrow(/backbone config/);
    expect(() => parseBackboneConfig({})).toThrow(/backbone config.backbone/);
  });

  it('addBackboneOptions + backboneConfigFromCli map flags to a config', () => {
    const parse = (args: string[]) => {
      const cmd = addBackboneOptions(new Command('train').exitOverride());
      cmd.parse(args, { from: 'user' });
      return backboneConfigFromCli(cmd.opts());
    };
    expect(parse([])).toBeUndefined();
    expect(parse(['--backbone', 'models/tiny-bert'])).toMatchObject({
      pooling: 'mean',
      normalize: true,
      allowRemote: false,
    });
    expect(
      parse([
        '--backbone',
        'Xenova/all-MiniLM-L6-v2',
        '--pooling',
        'cls',
        '--no-normalize',
        '--dtype',
        'q8',
        '--revision',
        'abc',
        '--allow-remote',
        '--feature-cache',
        '/tmp/fc',
      ]),
    ).toEqual({
      backbone: 'Xenova/all-MiniLM-L6-v2',
      pooling: 'cls',
      normalize: false,
      dtype: 'q8',
      revision: 'abc',
      allowRemote: true,
      cacheDir: '/tmp/fc',
    });
    expect(() => parse(['--backbone', 'x', '--pooling', 'max'])).toThrow(
      /--pooling: expected .*received "max"/,
    );
    expect(() => parse(['--backbone', 'x', '--dtype', 'fp64'])).toThrow(/--dtype: expected/);
  });
});
