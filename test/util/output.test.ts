import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkOutputDir,
  cleanStaleTemporaries,
  lockFile,
  type OutputKind,
  withOutputLock,
  writeOutputDir,
} from '../../src/util/output.js';
import { tempDir } from './temp-dir.js';

const root = tempDir('output');
const kind: OutputKind = { name: 'thing', marker: 'manifest.json', format: 'entk-thing' };
const options = { argument: 'out', kind };
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

async function thing(dir: string, value: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ format: 'entk-thing', value }));
}

describe('output directories', () => {
  it('classifies new, empty and same-kind directories; refuses foreign ones, a wrong format and files', async () => {
    expect(await checkOutputDir(path.join(root, 'a', 'b'), options)).toBe('new');
    await fs.mkdir(path.join(root, 'empty'));
    expect(await checkOutputDir(path.join(root, 'empty'), options)).toBe('empty');
    await thing(path.join(root, 'mine'), '1');
    await expect(checkOutputDir(path.join(root, 'mine'), options)).rejects.toThrow(
      /^out: expected a new or empty directory \(.*mine holds a thing: replace it with --overwrite\)/,
    );
    expect(await checkOutputDir(path.join(root, 'mine'), { ...options, overwrite: true })).toBe('existing');
    const other = path.join(root, 'other');
    await fs.mkdir(other);
    await fs.writeFile(path.join(other, 'manifest.json'), JSON.stringify({ format: 'someone-else' }));
    await expect(checkOutputDir(other, { ...options, overwrite: true })).rejects.toThrow(
      /holds manifest.json, which is not a thing; nothing was changed/,
    );
    await fs.writeFile(path.join(root, 'file'), 'x');
    await expect(checkOutputDir(path.join(root, 'file'), options)).rejects.toThrow(/is a file/);
  });

  it('writeOutputDir replaces a same-kind output only with overwrite, and keeps it when the build fails', async () => {
    const dir = path.join(root, 'w');
    await writeOutputDir(dir, options, (tmp) => thing(tmp, 'first'));
    await expect(writeOutputDir(dir, options, (tmp) => thing(tmp, 'second'))).rejects.toThrow(/--overwrite/);
    await expect(
      writeOutputDir(dir, { ...options, overwrite: true }, async () => {
        throw new Error('interrupted');
      }),
    ).rejects.toThrow('interrupted');
    expect(JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')).value).toBe('first');
    await writeOutputDir(dir, { ...options, overwrite: true }, (tmp) => thing(tmp, 'second'));
    expect(JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')).value).toBe('second');
    expect((await fs.readdir(root)).filter((n) => n.startsWith('.w'))).toEqual([]);
  });

  it('locks: a live holder is refused by pid, a dead one taken over; the lock is released on error', async () => {
    const target = path.join(root, 'locked');
    await fs.writeFile(
      lockFile(target),
      JSON.stringify({ pid: process.pid, host: os.hostname(), nonce: 'a', since: 's', command: '' }),
    );
    await expect(withOutputLock(target, 'out', 'run', async () => 1)).rejects.toThrow(
      new RegExp(
        `^out: expected a run no other process is writing \\(${target} is being written by pid ${process.pid} `,
      ),
    );
    await fs.writeFile(
      lockFile(target),
      JSON.stringify({ pid: deadPid(), host: os.hostname(), nonce: 'b', since: 's', command: '' }),
    );
    await expect(
      withOutputLock(target, 'out', 'run', async () => {
        // Held now: a nested writer of the same target is refused.
        await expect(withOutputLock(target, 'out', 'run', async () => 2)).rejects.toThrow(/no other process/);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(fs.access(lockFile(target))).rejects.toThrow();
    // Another host's lock is never judged stale.
    await fs.writeFile(
      lockFile(target),
      JSON.stringify({ pid: deadPid(), host: 'elsewhere', nonce: 'c', since: 's', command: '' }),
    );
    await expect(withOutputLock(target, 'out', 'run', async () => 3)).rejects.toThrow(/on host elsewhere/);
    await fs.rm(lockFile(target));
  });

  it('cleans temporaries of dead writers only; restores a .old copy whose target is missing', async () => {
    const dir = path.join(root, 'temps');
    await fs.mkdir(dir);
    const dead = deadPid();
    await fs.mkdir(path.join(dir, `.x.tmp-${dead}-aa`));
    await fs.writeFile(path.join(dir, `.y.json.tmp-${dead}-bb`), '{}');
    await fs.mkdir(path.join(dir, `.x.tmp-${process.pid}-cc`));
    await thing(path.join(dir, `.z.tmp-${dead}-dd.old`), 'previous');
    await fs.mkdir(path.join(dir, `.z.tmp-${dead}-dd`));
    expect((await cleanStaleTemporaries(dir, 'x')).sort()).toEqual([`.x.tmp-${dead}-aa`]);
    await cleanStaleTemporaries(dir);
    expect((await fs.readdir(dir)).sort()).toEqual([`.x.tmp-${process.pid}-cc`, 'z']);
    expect(JSON.parse(await fs.readFile(path.join(dir, 'z', 'manifest.json'), 'utf8')).value).toBe(
      'previous',
    );
  });
});
