import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NdArray } from '../../src/io/index.js';
import { computeKernelStores, readKernelStore } from '../../src/kernel-store/index.js';
import { train } from '../../src/train/index.js';
import { PYTHON, RUN_NUMPY_TESTS, sameArray } from '../io/helpers.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = tempDir('cli-export');
let store: string;

/**
 * The README's Python snippets: the ```python block after the marker `<!-- tested: <marker> -->`.
 * A missing README, marker or block fails the test (the README's text is what is tested).
 */
function readmeSnippet(marker: string): string {
  const text = readFileSync(path.join(repo, 'README.md'), 'utf8');
  const at = text.indexOf(`<!-- tested: ${marker} -->`);
  expect(at, `README.md must hold <!-- tested: ${marker} --> before a python block`).toBeGreaterThanOrEqual(
    0,
  );
  const m = /```python\n([\s\S]*?)```/.exec(text.slice(at));
  expect(m, `README.md: no \`\`\`python block after <!-- tested: ${marker} -->`).not.toBeNull();
  return m![1]!;
}

/** Run a snippet with its `store = "..."` line pointing at `storeDir`. */
function runSnippet(snippet: string, storeDir: string) {
  const code = snippet.replace(/^store = ".*"$/m, `store = ${JSON.stringify(storeDir)}`);
  expect(code).toContain(JSON.stringify(storeDir));
  return spawnSync(PYTHON, ['-c', code], { encoding: 'utf8' });
}

beforeAll(async () => {
  const run = path.join(dir, 'run');
  await train(
    {
      data: 'iris',
      model: { kind: 'mlp', widths: [8], activation: 'relu', parameterization: 'standard' },
      steps: 2,
      batchSize: 16,
      checkpoints: { steps: [0, 2] },
    },
    { outDir: run },
  );
  const stores = await computeKernelStores({ run, points: 'train:per-class=2,test:2', checkpoint: 'all' });
  store = stores[1]!.dir;
});

describe('entk export', () => {
  it('converts a store to safetensors, npz and json, and a whole run to npy, with identical arrays', async () => {
    const original = await readKernelStore(store);
    for (const format of ['safetensors', 'npz', 'json']) {
      const out = path.join(dir, `as-${format}`);
      const r = await runCli(['export', '--store', store, '--format', format, '--out', out, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report[0].arrays.kernel.file).toBe(`kernel.${format}`);
      const back = await readKernelStore(out);
      expect(back.manifest.points).toEqual(original.manifest.points);
      for (const name of ['kernel', 'inputs', 'labels', 'logits', 'probabilities'] as const) {
        expect(sameArray(back[name]!, original[name] as NdArray), `${format} ${name}`).toBe(true);
      }
    }
    const all = path.join(dir, 'all-npy');
    const r = await runCli([
      'export',
      '--store',
      path.join(dir, 'as-safetensors'),
      '--format',
      'npy',
      '--out',
      path.join(all, 'x'),
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(
      readFileSync(path.join(all, 'x', 'kernel.npy')).equals(readFileSync(path.join(store, 'kernel.npy'))),
    ).toBe(true);
    const many = await runCli([
      'export',
      '--store',
      path.join(dir, 'run'),
      '--format',
      'safetensors',
      '--out',
      all,
    ]);
    expect(many.status, many.stderr).toBe(0);
    expect(many.stdout.trim().split('\n')).toHaveLength(2);
    await readKernelStore(path.join(all, 'train-per-class-2-test-2', 'step-000000'));
  });

  it('rejects bad inputs with one line and a non-zero exit', async () => {
    const r = await runCli(['export', '--store', store, '--format', 'hdf5', '--out', path.join(dir, 'x')]);
    expectOneLineError(r, /--format: expected one of npy, npz, safetensors, json, received "hdf5"/);
  });
});

describe.runIf(RUN_NUMPY_TESTS)('the README Python snippets', () => {
  it('load an exported kernel with NumPy and check a block against the manifest', () => {
    const npy = runSnippet(readmeSnippet('kernel-python-npy'), store);
    expect(npy.status, npy.stderr).toBe(0);
    expect(npy.stdout).toMatch(/^ok step-000002 \(24, 24\) \(3, 3\)/);
    const st = runSnippet(readmeSnippet('kernel-python-safetensors'), path.join(dir, 'as-safetensors'));
    expect(st.status, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/^ok \(24, 24\)/);
  });
});
