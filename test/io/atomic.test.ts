import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  type ArrayFormat,
  readArray,
  streamArray,
  writeArray,
  writeNpz,
  writeSafetensors,
} from '../../src/io/index.js';
import { runProcess } from '../util/process.js';
import { sameArray, sampleArray, tempDir } from './helpers.js';

const dir = tempDir('atomic');
const repo = path.resolve(__dirname, '../..');

describe('atomic array writes', () => {
  it('a writer that fails mid-stream leaves the previous file intact and no temporary files', async () => {
    for (const format of ['npy', 'npz', 'safetensors'] as ArrayFormat[]) {
      const file = path.join(dir, `keep.${format}`);
      const old = sampleArray('float32', [50, 40], 1);
      const info = await writeArray(file, old);
      const before = readFileSync(file);
      const failing = streamArray(file, { dtype: 'float32', shape: [50, 40] }, async (write) => {
        await write(new Float32Array(1000));
        throw new Error('simulated failure half way');
      });
      await expect(failing).rejects.toThrow(/simulated failure/);
      expect(readFileSync(file).equals(before), format).toBe(true);
      expect(sameArray(await readArray(file, { sha256: info.sha256 }), old)).toBe(true);
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    }
    const npz = path.join(dir, 'keep.npz');
    const before = readFileSync(npz);
    await expect(
      writeNpz(npz, [{ name: 'a', dtype: 'int8', shape: [4], data: async (w) => w(new Int8Array(2)) }]),
    ).rejects.toThrow(/expected 4 elements/);
    await expect(
      writeSafetensors(path.join(dir, 'keep.safetensors'), [
        { name: 'a', dtype: 'int8', shape: [4], data: new Int8Array(5) },
      ]),
    ).rejects.toThrow(/at most 4 more elements/);
    expect(readFileSync(npz).equals(before)).toBe(true);
  });

  it('a process killed (SIGKILL) in the middle of streaming a large file leaves the previous file intact', async () => {
    const file = path.join(dir, 'crash.npy');
    const old = sampleArray('float64', [64, 64], 2);
    const info = await writeArray(file, old);
    const script = path.join(dir, 'crash-writer.mts');
    const io = pathToFileURL(path.join(repo, 'src/io/index.ts')).href;
    writeFileSync(
      script,
      `import { streamNpy } from ${JSON.stringify(io)};
const rows = 4000, cols = 1000;
await streamNpy(process.argv[2], { dtype: 'float32', shape: [rows, cols] }, async (write) => {
  const block = new Float32Array(100 * cols).fill(1);
  for (let r = 0; r < rows; r += 100) {
    await write(block);
    if (r === 2000) process.kill(process.pid, 'SIGKILL');
  }
});
`,
    );
    const r = await runProcess(process.execPath, [path.join(repo, 'bin/run-ts.js'), script, file], {
      cwd: repo,
    });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    // The half-written temporary file exists (the crash left it), the target is untouched.
    const leftovers = readdirSync(dir).filter((f) => f.startsWith('.crash.npy.tmp-'));
    expect(leftovers.length).toBe(1);
    expect(readFileSync(path.join(dir, leftovers[0])).byteLength).toBeGreaterThan(1_000_000);
    expect(sameArray(await readArray(file, { sha256: info.sha256 }), old)).toBe(true);
  });
});
