import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { streamFileAtomic, writeDirAtomic, writeFileAtomic } from '../../src/util/atomic.js';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-atomic-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('atomic writes', () => {
  it('writes a file and leaves no temporary behind', async () => {
    const file = path.join(dir, 'a', 'b.txt');
    await writeFileAtomic(file, 'hello');
    expect(await fs.readFile(file, 'utf8')).toBe('hello');
    expect(await fs.readdir(path.dirname(file))).toEqual(['b.txt']);
  });

  it('keeps the old file when a streamed write fails midway', async () => {
    const file = path.join(dir, 'k.bin');
    await writeFileAtomic(file, 'old');
    await expect(
      streamFileAtomic(file, async (write) => {
        await write(new Uint8Array([1, 2, 3]));
        throw new Error('simulated crash');
      }),
    ).rejects.toThrow('simulated crash');
    expect(await fs.readFile(file, 'utf8')).toBe('old');
    expect(await fs.readdir(dir)).toEqual(['k.bin']);
  });

  it('replaces a directory only when the new one is complete', async () => {
    const target = path.join(dir, 'ckpt');
    await writeDirAtomic(target, async (tmp) => fs.writeFile(path.join(tmp, 'v'), '1'));
    await expect(
      writeDirAtomic(target, async (tmp) => {
        await fs.writeFile(path.join(tmp, 'v'), '2');
        throw new Error('interrupted');
      }),
    ).rejects.toThrow('interrupted');
    expect(await fs.readFile(path.join(target, 'v'), 'utf8')).toBe('1');
    await writeDirAtomic(target, async (tmp) => fs.writeFile(path.join(tmp, 'v'), '3'));
    expect(await fs.readFile(path.join(target, 'v'), 'utf8')).toBe('3');
    expect(await fs.readdir(dir)).toEqual(['ckpt']);
  });
});
