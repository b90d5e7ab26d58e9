// Issue 12 through the real CLI: requests that used to crash, hang or be silently ignored are
// refused up front with a one-line error naming the flag (or file) and the numbers, exit code 2,
// and nothing already on disk changes.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../src/model/index.js';
import { train } from '../../src/train/train.js';
import { tempDir } from '../util/temp-dir.js';
import { type CliResult, expectOneLineError, runCli } from './run-cli.js';

const root = tempDir('cli-limits');
const run = path.join(root, 'run');

/** Every file under `dir` with its sha256: to show that a refused command changed nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  await train(
    { data: 'iris', model: 'mlp-small', steps: 4, checkpoints: { steps: [0, 4] } },
    { outDir: run },
  );
}, 120_000);

describe('refused before anything is computed', async () => {
  it('finetune --steps 1000000000: the recording does not fit in memory (was a V8 abort, exit 133)', async () => {
    const before = snapshot(run);
    const r = await runCli(
      [
        'finetune',
        '--run',
        run,
        '--name',
        'huge',
        '--points',
        'train:per-class=1',
        '--lr',
        '0.1',
        '--steps',
        '1000000000',
      ],
      { ENTK_MEMORY_BYTES: '16000000000' },
    );
    // 1000000001 recorded steps × 3 points × 3 classes × 8 B + 24 B each: 96.0 GB
    expectOneLineError(
      r,
      /^entk: error: steps: expected a value for which the finetune recording \(1000000001 recorded steps × 3 points × 3 classes × 8 B.* it needs 96\.0 GB of memory \(the budget ENTK_MEMORY_BYTES\), 16\.0 GB available, received 1000000000$/,
    );
    expect(snapshot(run)).toEqual(before);
    expect(existsSync(path.join(run, 'finetune', 'huge'))).toBe(false);
  });

  it('train --widths 100000,100000: the parameter count and bytes, naming --widths (was "Invalid typed array length")', async () => {
    const out = path.join(root, 'wide');
    const r = await runCli(
      ['train', '--data', 'iris', '--widths', '100000,100000', '--steps', '1', '--out', out],
      {
        ENTK_MEMORY_BYTES: '16000000000',
      },
    );
    // (4+1)·1e5 + (1e5+1)·1e5 + (1e5+1)·3 parameters
    const parameters = 5 * 100_000 + 100_001 * 100_000 + 100_001 * 3;
    expectOneLineError(
      r,
      new RegExp(
        `model\\.widths \\(--widths\\): expected .*an MLP of ${parameters} parameters .*it needs 160 GB of memory, 16\\.0 GB available`,
      ),
    );
    // No model was built (train writes config.json and split.json before the model today).
    expect(existsSync(path.join(out, 'checkpoints'))).toBe(false);
  });

  it('train --steps 1000000000: the evaluation and checkpoint step lists are bounded (a Set of 10⁹ steps aborted)', async () => {
    const out = path.join(root, 'long');
    expectOneLineError(
      await runCli(['train', '--data', 'iris', '--steps', '1000000000', '--out', out]),
      /config\.steps \(--steps\): expected at most 1000000 evaluations \(1000000000 steps, evaluated every 4 = once per epoch: 250000000\)/,
    );
    expectOneLineError(
      await runCli([
        'train',
        '--data',
        'iris',
        '--steps',
        '1000000000',
        '--eval-every',
        '100000000',
        '--checkpoint-every',
        '1',
        '--out',
        out,
      ]),
      /config\.checkpoints\.every \(--checkpoint-every\): expected a value giving at most 1000000 checkpoints \(1000000000 steps \/ 1 = 1000000000\), received 1/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('train --data synthetic:classes=100000 is refused before generating (was out of bounds after a 292 MB split.json)', async () => {
    const out = path.join(root, 'many-classes');
    const r = await runCli(['train', '--data', 'synthetic:classes=100000', '--steps', '1', '--out', out]);
    expectOneLineError(
      r,
      /numClasses: expected an integer ≥ 2 and ≤ 1000 \(synthetic classes=\), received 100000/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('column flags on a built-in dataset name the flag (they were ignored)', async () => {
    for (const [flag, value] of [
      ['--class-names', 'a,b,c'],
      ['--label-column', 'species'],
      ['--feature-columns', 'x,y'],
      ['--id-column', 'id'],
    ]) {
      const out = path.join(root, `flag${flag}`);
      const r = await runCli(['train', '--data', 'iris', flag!, value!, '--steps', '1', '--out', out]);
      expectOneLineError(r, new RegExp(`\\(${flag}\\): expected nothing for the built-in dataset iris`));
      expect(existsSync(out)).toBe(false);
    }
  });

  it('--text-column without --backbone is refused (the column was dropped)', async () => {
    const csv = path.join(root, 'texts.csv');
    writeFileSync(csv, 'x,text,label\n1,a b,0\n2,c d,1\n3,e f,0\n4,g h,1\n');
    const out = path.join(root, 'text');
    const r = await runCli(['train', '--data', csv, '--text-column', 'text', '--steps', '1', '--out', out]);
    expectOneLineError(r, /textColumn \(--text-column\): expected a backbone \(--backbone\)/);
    expect(existsSync(out)).toBe(false);
  });

  it('kernel --float64 --contraction wasm names both flags (the contraction was ignored)', async () => {
    const before = snapshot(run);
    const r = await runCli([
      'kernel',
      '--run',
      run,
      '--points',
      'train:4',
      '--float64',
      '--contraction',
      'wasm',
    ]);
    expectOneLineError(
      r,
      /contraction \(--contraction\): expected 'auto' with accumulation 'float64' \(--float64\).*received "wasm"/,
    );
    expect(snapshot(run)).toEqual(before);
  });

  it('data errors through the CLI: negative labels, ids with commas, JSONL null in line 1', async () => {
    const cases: [string, string, RegExp][] = [
      [
        'neg.csv',
        'x,label\n1,0\n2,1\n3,-1\n',
        /neg\.csv, line 4, column 2 \("label"\): label -1 is not a class index/,
      ],
      [
        'ids.csv',
        'id,x,label\na,1,0\n"b,c",2,1\n',
        /ids\.csv, line 3, column 1 \("id"\): id "b,c" contains a comma/,
      ],
      [
        'nul.jsonl',
        '{"a":1,"b":null,"label":0}\n{"a":2,"b":3,"label":1}\n',
        /nul\.jsonl, line 1, column "b": missing value/,
      ],
    ];
    for (const [name, content, message] of cases) {
      const file = path.join(root, name);
      writeFileSync(file, content);
      const out = path.join(root, `out-${name}`);
      expectOneLineError(await runCli(['train', '--data', file, '--steps', '1', '--out', out]), message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('a functional model.json with a cycle', () => {
  /** Like runCli, with a 60 s timeout: the old loader spun forever on this model. */
  const runCliBounded = (args: string[]): Promise<CliResult> => runCli(args, {}, 60_000);

  it('is refused naming the file and the layers of the cycle (tfjs spun forever)', async () => {
    const input = tf.input({ shape: [4], name: 'x' });
    const a = tf.layers.dense({ units: 4, name: 'a' }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 4, name: 'b' }).apply(a) as tf.SymbolicTensor;
    const logits = tf.layers.dense({ units: 3, name: 'logits' }).apply(b) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: logits });
    const dir = path.join(root, 'cyclic');
    await saveModel(model, dir);
    model.dispose();
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(readFileSync(file, 'utf8'));
    const layers = json.modelTopology.config.layers as { name: string; inbound_nodes: unknown[] }[];
    layers.find((l) => l.name === 'a')!.inbound_nodes = [[['b', 0, 0, {}]]]; // a ← b ← a
    writeFileSync(file, JSON.stringify(json));
    const before = snapshot(dir);
    const out = path.join(root, 'cyclic-store');
    const r = await runCliBounded(['kernel', '--model', dir, '--points', 'file:points.csv', '--out', out]);
    expect(r.status, 'timed out: the loader hangs').not.toBeNull();
    expectOneLineError(
      r,
      new RegExp(
        `${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: the layer graph has a cycle \\((a → b → a|b → a → b)\\)`,
      ),
    );
    expect(snapshot(dir)).toEqual(before);
    expect(existsSync(out)).toBe(false);
  }, 120_000);
});
