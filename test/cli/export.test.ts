import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NdArray } from '../../src/io/index.js';
import { computeKernelStores, readKernelStore } from '../../src/kernel-store/index.js';
import { train } from '../../src/train/index.js';
import { RUN_NUMPY_TESTS, sameArray } from '../io/helpers.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = tempDir('cli-export');
let store: string;

/**
 * The README's Python snippets (kept identical there, after the markers
 * `<!-- tested: kernel-python-npy -->` and `<!-- tested: kernel-python-safetensors -->`; when the
 * README has them, the test runs the README's text instead of these copies).
 */
const PYTHON_NPY_SNIPPET = `import hashlib, json
import numpy as np

store = "runs/digits-mlp/kernels/train-per-class-10/step-000400"
m = json.load(open(f"{store}/manifest.json"))

# Every array file is listed with its sha256: check them.
for name, a in m["arrays"].items():
    digest = hashlib.sha256(open(f"{store}/{a['file']}", "rb").read()).hexdigest()
    assert digest == a["sha256"], f"{name}: file does not match the manifest"

K = np.load(f"{store}/{m['arrays']['kernel']['file']}")          # [N*V, N*V], point-major
N, V = m["points"]["count"], m["model"]["numOutputs"]
assert K.shape == tuple(m["kernel"]["shape"]) == (N * V, N * V)
assert K.dtype == np.dtype(m["kernel"]["dtype"])

# The V x V block K(x_a, x_b) of two points, by id: rows a*V..a*V+V-1, columns b*V..b*V+V-1.
ids = m["points"]["ids"]
a, b = ids.index(ids[0]), ids.index(ids[-1])
block = K[a * V:(a + 1) * V, b * V:(b + 1) * V]
assert np.array_equal(block, K.reshape(N, V, N, V)[a, :, b, :])
assert np.allclose(block, K[b * V:(b + 1) * V, a * V:(a + 1) * V].T, rtol=1e-5, atol=1e-6 * np.abs(K).max())
assert np.linalg.eigvalsh(K[a * V:(a + 1) * V, a * V:(a + 1) * V]).min() >= -1e-5 * np.abs(K).max()

# The model's outputs at the same points: probabilities = softmax(logits), row n = ids[n].
logits = np.load(f"{store}/{m['arrays']['logits']['file']}")
probs = np.load(f"{store}/{m['arrays']['probabilities']['file']}")
z = np.exp(logits - logits.max(axis=1, keepdims=True))
assert np.allclose(probs, z / z.sum(axis=1, keepdims=True), atol=1e-6)
print("ok", m["checkpoint"]["id"], K.shape, block.shape)
`;

const PYTHON_SAFETENSORS_SNIPPET = `import json, struct
import numpy as np

def load_safetensors(path):
    """All tensors of a .safetensors file, with NumPy only (no safetensors package needed)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1", "BOOL": "?"}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out

store = "exported/train-per-class-10/step-000400"
m = json.load(open(f"{store}/manifest.json"))
K = load_safetensors(f"{store}/kernel.safetensors")["kernel"]
assert list(K.shape) == m["kernel"]["shape"]
print("ok", K.shape)
`;

function readmeSnippet(marker: string): string | null {
  const readme = path.join(repo, 'README.md');
  if (!existsSync(readme)) return null;
  const text = readFileSync(readme, 'utf8');
  const at = text.indexOf(`<!-- tested: ${marker} -->`);
  if (at < 0) return null;
  const m = /```python\n([\s\S]*?)```/.exec(text.slice(at));
  return m ? m[1]! : null;
}

/** Run a snippet with its `store = "..."` line pointing at `storeDir`. */
function runSnippet(snippet: string, storeDir: string) {
  const code = snippet.replace(/^store = ".*"$/m, `store = ${JSON.stringify(storeDir)}`);
  expect(code).toContain(JSON.stringify(storeDir));
  return spawnSync('python3', ['-c', code], { encoding: 'utf8' });
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
      const r = runCli(['export', '--store', store, '--format', format, '--out', out, '--json']);
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
    const r = runCli([
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
    const many = runCli([
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

  it('rejects bad inputs with one line and a non-zero exit', () => {
    const r = runCli(['export', '--store', store, '--format', 'hdf5', '--out', path.join(dir, 'x')]);
    expectOneLineError(r, /--format: expected one of npy, npz, safetensors, json, received "hdf5"/);
  });
});

describe.runIf(RUN_NUMPY_TESTS)('the README Python snippets', () => {
  it('load an exported kernel with NumPy and check a block against the manifest', () => {
    const npy = runSnippet(readmeSnippet('kernel-python-npy') ?? PYTHON_NPY_SNIPPET, store);
    expect(npy.status, npy.stderr).toBe(0);
    expect(npy.stdout).toMatch(/^ok step-000002 \(24, 24\) \(3, 3\)/);
    const st = runSnippet(
      readmeSnippet('kernel-python-safetensors') ?? PYTHON_SAFETENSORS_SNIPPET,
      path.join(dir, 'as-safetensors'),
    );
    expect(st.status, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/^ok \(24, 24\)/);
  });
});
