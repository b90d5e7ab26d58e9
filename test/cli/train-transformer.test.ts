// `entk train --model transformer-tiny --tokenizer models/tiny-bert` on data/text/topics.csv through
// the real CLI and transformers.js tokenizer, then `entk kernel` on the run (structured rules for
// every layer) and on a checkpoint's model.json (the user-model path), and determinism per seed.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenizeTexts } from '../../src/embed/index.js';
import { readNpy, writeNpy } from '../../src/io/index.js';
import { openRun } from '../../src/train/index.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const tmp = tempDir('train-transformer');

const TRAIN = [
  'train',
  '--data',
  'text/topics.csv',
  '--model',
  'transformer-tiny',
  '--tokenizer',
  'models/tiny-bert',
  '--steps',
  '3',
  '--batch-size',
  '16',
  '--seed',
  '4',
  '--json',
];

/** Structured rules of the transformer's layer classes (no 'autodiff', no 'jacobian'). */
const STRUCTURED = new Set([
  'embedding-explicit',
  'embedding-sparse',
  'dense-position',
  'layernorm',
  'dense-explicit',
  'dense-identity',
]);

describe('entk train --model transformer-tiny --tokenizer', () => {
  it('tokenises topics.csv, trains, reopens; its kernels are structured over every layer (run and model.json paths)', async () => {
    const out = path.join(tmp, 'run');
    const r = await runCli([...TRAIN, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const run = await openRun(out);
    expect(run.config.tokenizer).toBe('models/tiny-bert');
    expect(run.config.standardize).toBe(false);
    expect(run.split.inputShape).toEqual([64]);
    expect(run.split.tokenizer).toMatchObject({ vocabSize: 950, padId: 0, maxLength: 32, truncated: 0 });
    expect(run.split.tokenizer!.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(run.train.ids.length + run.test.ids.length).toBe(300);
    // Row 0: [CLS] … [SEP] ids then the mask, equal to the tokenizer's own output for its text.
    const [id0] = run.train.ids;
    const text = run.train.text![0]!;
    const direct = await tokenizeTexts([text], { tokenizer: 'models/tiny-bert', maxLength: 32 });
    expect(Array.from(run.train.x.subarray(0, 64))).toEqual(Array.from(direct.x));
    expect(run.train.x[0]).toBe(2); // [CLS]
    expect(id0).toMatch(/^s\d+/);
    const model = await run.loadModel('last');
    expect(model.getLayer('embeddings/word').getWeights()[0]!.shape).toEqual([950, 64]);
    model.dispose();

    // Kernels of the run: structured rules for every parameterised layer; texts of a file of one's own
    // are tokenised as the run's were.
    const more = path.join(tmp, 'more.csv');
    await fs.writeFile(
      more,
      'id,text,label\nm1,The rain stopped at noon.,weather\nm2,A late goal won it.,sport\n',
    );
    const k = await runCli([
      'kernel',
      '--run',
      out,
      '--checkpoint',
      'last',
      '--points',
      `train:4,test:2,file:${more}`,
      '--json',
    ]);
    expect(k.status, k.stderr).toBe(0);
    const [store] = JSON.parse(k.stdout) as Array<{
      dir: string;
      rules: Array<{ name: string; rule: string }>;
    }>;
    expect(store!.rules.length).toBe(21);
    for (const rule of store!.rules)
      expect(STRUCTURED.has(rule.rule), `${rule.name} ${rule.rule}`).toBe(true);
    const manifest = JSON.parse(await fs.readFile(path.join(store!.dir, 'manifest.json'), 'utf8'));
    expect(manifest.points.ids.slice(-2)).toEqual(['m1', 'm2']);
    const fileTokens = await tokenizeTexts(['The rain stopped at noon.', 'A late goal won it.'], {
      tokenizer: 'models/tiny-bert',
      maxLength: 32,
    });
    const inputs = await readNpy(path.join(store!.dir, 'inputs.npy'));
    expect(Array.from((inputs.data as Float32Array).subarray(6 * 64))).toEqual(Array.from(fileTokens.x));

    // The user-model path: entk kernel --model <checkpoint>/model.json with token points from an .npy.
    const points = path.join(tmp, 'points.npy');
    await writeNpy(points, { dtype: 'float32', shape: [3, 64], data: run.test.x.slice(0, 3 * 64) });
    const m = await runCli([
      'kernel',
      '--model',
      path.join(run.checkpointDir('last'), 'model.json'),
      '--points',
      `npy:${points}`,
      '--parameters',
      'block1/,head',
      '--out',
      path.join(tmp, 'model-kernel'),
    ]);
    expect(m.status, m.stderr).toBe(0);
    expect(m.stderr).toContain('eNTK per layer (layer, class, rule, parameters)');
    const layers = m.stderr.split('\n').filter((l) => /^ {2}\S+ {2}\S+ {2}\S+ {2}\d+/.test(l));
    expect(layers.map((l) => l.trim().split(/\s+/)[0])).toEqual([
      'block1/attention/query',
      'block1/attention/key',
      'block1/attention/value',
      'block1/attention/output',
      'block1/attention/norm',
      'block1/mlp/dense1',
      'block1/mlp/dense2',
      'block1/mlp/norm',
      'head',
    ]);
    for (const l of layers) expect(STRUCTURED.has(l.trim().split(/\s+/)[2]!), l).toBe(true);
    expect(m.stderr).not.toMatch(/jacobian|autodiff|outside the structured/);
  });

  it('is deterministic: the same seed gives bitwise the same trained weights', async () => {
    const a = path.join(tmp, 'seed-a');
    const b = path.join(tmp, 'seed-b');
    const [ra, rb] = await Promise.all([runCli([...TRAIN, '--out', a]), runCli([...TRAIN, '--out', b])]);
    expect(ra.status, ra.stderr).toBe(0);
    expect(rb.status, rb.stderr).toBe(0);
    for (const step of ['step-000000', 'step-000003']) {
      const wa = await fs.readFile(path.join(a, 'checkpoints', step, 'weights.bin'));
      const wb = await fs.readFile(path.join(b, 'checkpoints', step, 'weights.bin'));
      expect(wa.equals(wb), step).toBe(true);
    }
    const w0 = await fs.readFile(path.join(a, 'checkpoints', 'step-000000', 'weights.bin'));
    const w3 = await fs.readFile(path.join(a, 'checkpoints', 'step-000003', 'weights.bin'));
    expect(w0.equals(w3)).toBe(false); // training moved the weights
  });

  it('refuses a tokenizer without a transformer, and a transformer on text without a tokenizer, in one line', async () => {
    const r1 = await runCli([
      'train',
      '--data',
      'text/topics.csv',
      '--model',
      'linear',
      '--tokenizer',
      'models/tiny-bert',
      '--out',
      path.join(tmp, 'bad-1'),
    ]);
    expectOneLineError(r1, /config\.tokenizer \(--tokenizer\): expected a transformer model/);
    const r2 = await runCli([
      'train',
      '--data',
      'text/topics.csv',
      '--model',
      'transformer-tiny',
      '--out',
      path.join(tmp, 'bad-2'),
    ]);
    expectOneLineError(r2, /tokenizer: expected a tokenizer for the text dataset/);
    const r3 = await runCli([
      'train',
      '--data',
      'text/topics.csv',
      '--model',
      'transformer-tiny',
      '--tokenizer',
      'no/such/dir',
      '--out',
      path.join(tmp, 'bad-3'),
    ]);
    expectOneLineError(
      r3,
      /tokenizer \(--tokenizer\): expected a local model directory containing tokenizer\.json/,
    );
    for (const d of ['bad-1', 'bad-2', 'bad-3']) await expect(fs.stat(path.join(tmp, d))).rejects.toThrow();
  });
});
