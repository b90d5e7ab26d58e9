// Issue 12 (part A): entk never replaces what it did not write, locks what it writes, leaves no
// half-made run behind, cleans the temporaries of killed writers, and names the argument in
// every refusal. Each case runs the real CLI and checks that every pre-existing file is
// byte-identical afterwards.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { computeKernelStores, readKernelManifest } from '../../src/kernel-store/index.js';
import { train } from '../../src/train/index.js';
import { lockFile } from '../../src/util/output.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const root = tempDir('cli-output-safety');
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let run: string;
let store: string;

/** sha256 of every file under `dir` (hidden ones too), by relative path; directories as 'dir'. */
async function treeHash(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p);
      if (e.isDirectory()) {
        out[rel] = 'dir';
        await walk(p);
      } else
        out[rel] = createHash('sha256')
          .update(await fs.readFile(p))
          .digest('hex');
    }
  };
  await walk(dir);
  return out;
}

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  return child.pid!;
}

const tinyRun = {
  data: 'iris',
  model: {
    kind: 'mlp' as const,
    widths: [8],
    activation: 'relu' as const,
    parameterization: 'standard' as const,
  },
  steps: 4,
  batchSize: 16,
  checkpoints: { steps: [0, 2, 4] },
};

beforeAll(async () => {
  run = path.join(root, 'run');
  await train(tinyRun, { outDir: run });
  [store] = await computeKernelStores({ run, points: 'train:4', checkpoint: 'last' }).then((s) =>
    s.map((x) => x.dir),
  );
});

describe('1. --out never replaces what entk did not write', () => {
  it('export: a directory with a user file, a run, a file and the current directory are refused, unchanged', async () => {
    const d = path.join(root, 'notes');
    await fs.mkdir(d);
    await fs.writeFile(path.join(d, 'notes.txt'), 'my notes\n');
    const before = await treeHash(root);
    expectOneLineError(
      await runCli(['export', '--store', store, '--format', 'npz', '--out', d]),
      new RegExp(
        `^entk: error: --out: expected a new or empty directory, or a kernel store written by entk \\(${d} holds notes.txt, which is not a kernel store; nothing was changed\\), received "${d}"$`,
      ),
    );
    expectOneLineError(
      await runCli(['export', '--store', store, '--format', 'npz', '--out', run]),
      /--out: expected .*holds checkpoints, config.json, kernels and 2 more, which is not a kernel store/,
    );
    expectOneLineError(
      await runCli(['export', '--store', store, '--format', 'npz', '--out', '/dev/null']),
      /^entk: error: --out: expected a directory for a kernel store \(\/dev\/null is a file\), received "\/dev\/null"$/,
    );
    expectOneLineError(
      await runCli(['export', '--store', store, '--format', 'npz', '--out', path.join(d, 'notes.txt', 'x')]),
      /--out: expected a path inside a directory \(.*notes.txt is not a directory\)/,
    );
    // The CLI runs in the repository root: '.' is the current directory.
    const siblings = await fs.readdir(path.dirname(repo));
    expectOneLineError(
      await runCli(['export', '--store', store, '--format', 'npz', '--out', '.']),
      /--out: expected a directory other than the current one or one containing it/,
    );
    expect(await fs.readdir(path.dirname(repo))).toEqual(siblings);
    expect(await treeHash(root)).toEqual(before);
  });

  it('export: an earlier export is replaced only with --overwrite', async () => {
    const out = path.join(root, 'exported');
    expect((await runCli(['export', '--store', store, '--format', 'npz', '--out', out])).status).toBe(0);
    const before = await treeHash(out);
    expectOneLineError(
      await runCli(['export', '--store', store, '--format', 'json', '--out', out]),
      /--out: expected a new or empty directory \(.*exported holds a kernel store: replace it with --overwrite\)/,
    );
    expect(await treeHash(out)).toEqual(before);
    const r = await runCli(['export', '--store', store, '--format', 'json', '--out', out, '--overwrite']);
    expect(r.status, r.stderr).toBe(0);
    expect(Object.keys(await treeHash(out)).sort()).toContain('kernel.json');
    expect((await fs.readdir(root)).filter((n) => n.startsWith('.exported'))).toEqual([]);
  });

  it('kernel: recomputing a store (e.g. --trace after a full kernel) needs --overwrite; --model --out refuses user files', async () => {
    const before = await treeHash(run);
    const args = ['kernel', '--run', run, '--points', 'train:4', '--checkpoint', 'last', '--trace'];
    expectOneLineError(
      await runCli(args),
      /--out: expected a new or empty directory \(.*kernels\/train-4\/step-000004 holds a kernel store: replace it with --overwrite\)/,
    );
    expect(await treeHash(run)).toEqual(before);

    const d = path.join(root, 'model-out');
    await fs.mkdir(d);
    await fs.writeFile(path.join(d, 'keep.txt'), 'keep');
    const beforeD = await treeHash(d);
    expectOneLineError(
      await runCli([
        'kernel',
        '--model',
        path.join(run, 'checkpoints', 'step-000004'),
        '--points',
        `npy:${path.join(store, 'inputs.npy')}`,
        '--out',
        d,
      ]),
      /--out: expected a new or empty directory, or a kernel store written by entk \(.* holds keep.txt/,
    );
    expect(await treeHash(d)).toEqual(beforeD);

    const r = await runCli([...args, '--overwrite', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect((await readKernelManifest(store)).kernel.kind).toBe('trace');
  });

  it('kernel merge refuses to replace an existing store without --overwrite', async () => {
    for (const shard of ['0/2', '1/2']) {
      const r = await runCli([
        'kernel',
        '--run',
        run,
        '--points',
        'train:4',
        '--name',
        'sharded',
        '--shard',
        shard,
      ]);
      expect(r.status, r.stderr).toBe(0);
    }
    const target = path.join(run, 'kernels', 'sharded', 'step-000004');
    expect((await runCli(['kernel', 'merge', `${target}.shards`])).status).toBe(0);
    const before = await treeHash(target);
    expectOneLineError(
      await runCli(['kernel', 'merge', `${target}.shards`]),
      /dir: expected a new or empty directory \(.*sharded\/step-000004 holds a kernel store: replace it with --overwrite\)/,
    );
    expect(await treeHash(target)).toEqual(before);
    expect((await runCli(['kernel', 'merge', `${target}.shards`, '--overwrite'])).status).toBe(0);
  });

  it('experiment: a non-empty --out that is not an experiment is refused, unchanged', async () => {
    const d = path.join(root, 'not-an-experiment');
    await fs.mkdir(path.join(d, 'runs', 'mine'), { recursive: true });
    await fs.writeFile(path.join(d, 'runs', 'mine', 'config.json'), '{}');
    const before = await treeHash(d);
    expectOneLineError(
      await runCli(['experiment', 'demo', '--out', d, '--force']),
      /--out: expected a new or empty directory, or an experiment written by entk \(.* holds runs, which is not an experiment; nothing was changed\)/,
    );
    expect(await treeHash(d)).toEqual(before);
  });
});

describe('7. runs and stores are locked while written', () => {
  it('a second writer is refused naming the run and the pid; a stale lock is taken over with a warning', async () => {
    const lock = lockFile(run);
    // A live process (this test) holds the lock.
    await fs.writeFile(
      lock,
      JSON.stringify({ pid: process.pid, host: os.hostname(), nonce: 'x', since: 'now', command: 'test' }),
    );
    // ... and the lock of a kernel store.
    const storeLock = lockFile(store);
    await fs.writeFile(
      storeLock,
      JSON.stringify({ pid: process.pid, host: os.hostname(), nonce: 'z', since: 'now', command: 'test' }),
    );
    const before = await treeHash(run);
    expectOneLineError(
      await runCli(['train', '--out', run, '--resume', '--steps', '6']),
      new RegExp(
        `--out: expected a run no other process is writing \\(${run} is being written by pid ${process.pid} since now; wait for it to finish\\)`,
      ),
    );
    expectOneLineError(
      await runCli(['kernel', '--run', run, '--points', 'train:4', '--overwrite']),
      new RegExp(
        `--out: expected a kernel store no other process is writing \\(${store} is being written by pid ${process.pid} `,
      ),
    );
    expect(await treeHash(run)).toEqual(before);
    await fs.rm(storeLock);

    // Its owner is gone: the next writer takes it over, says so, and releases it.
    const pid = deadPid();
    await fs.writeFile(
      lock,
      JSON.stringify({ pid, host: os.hostname(), nonce: 'y', since: 'then', command: 'x' }),
    );
    const r = await runCli(['train', '--out', run, '--resume', '--steps', '6', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `entk: warning: taking over the lock of ${run} from pid ${pid}, which is no longer running`,
    );
    expect(JSON.parse(r.stdout)).toMatchObject({ step: 6, resumedFrom: 4 });
    await expect(fs.access(lock)).rejects.toThrow();
  });

  it('two concurrent train --resume: one runs, the other is refused; train.jsonl is not interleaved', async () => {
    const dir = path.join(root, 'concurrent');
    await train({ ...tinyRun, checkpoints: { steps: [0] } }, { outDir: dir });
    const entk = path.join(repo, 'bin/entk.js');
    const first = spawn(
      process.execPath,
      [entk, 'train', '--out', dir, '--resume', '--steps', '100000', '--quiet'],
      {
        cwd: repo,
        env: { ...process.env, CI: 'true' },
      },
    );
    const exited = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
    // Wait until it holds the lock.
    for (
      let i = 0;
      i < 600 &&
      !(await fs.access(lockFile(dir)).then(
        () => true,
        () => false,
      ));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const second = await runCli(['train', '--out', dir, '--resume', '--steps', '100000']);
    first.kill('SIGINT'); // stops after the current step (exit 130)
    expect(await exited).toBe(130);
    expectOneLineError(
      second,
      new RegExp(
        `--out: expected a run no other process is writing \\(${dir} is being written by pid ${first.pid} `,
      ),
    );
    const lines = (await fs.readFile(path.join(dir, 'logs', 'train.jsonl'), 'utf8')).trimEnd().split('\n');
    const steps = lines.map((l) => JSON.parse(l).step as number);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(new Set(steps).size).toBe(steps.length);
  }, 120_000);
});

describe('8. a failed new run leaves nothing behind', () => {
  it('one-class data: no config.json/split.json; the next attempt starts a new run', async () => {
    const csv = path.join(root, 'one-class.csv');
    await fs.writeFile(csv, 'a,b,label\n1,2,x\n3,4,x\n5,6,x\n7,8,x\n');
    const out = path.join(root, 'half');
    const r = await runCli(['train', '--data', csv, '--out', out, '--steps', '2']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/numClasses: expected an integer >= 2, received 1/);
    await expect(fs.access(out)).rejects.toThrow();
    expect((await fs.readdir(root)).filter((n) => n.startsWith('.half'))).toEqual([]);
    // An existing empty directory stays empty.
    await fs.mkdir(out);
    expect((await runCli(['train', '--data', csv, '--out', out, '--steps', '2'])).status).toBe(2);
    expect(await fs.readdir(out)).toEqual([]);
    const ok = await runCli(['train', '--data', 'iris', '--model', 'linear', '--steps', '2', '--out', out]);
    expect(ok.status, ok.stderr).toBe(0);
    expect((await fs.readdir(out)).sort()).toEqual(['checkpoints', 'config.json', 'logs', 'split.json']);
  });
});

describe('10. errors name the argument; stale temporaries are cleaned', () => {
  it('train --out /dev/null, --resume of an empty directory, a missing checkpoint directory', async () => {
    expectOneLineError(
      await runCli(['train', '--data', 'iris', '--out', '/dev/null']),
      /^entk: error: --out: expected a directory for a run \(\/dev\/null is a file\), received "\/dev\/null"$/,
    );
    const empty = path.join(root, 'empty');
    await fs.mkdir(empty);
    expectOneLineError(
      await runCli(['train', '--out', empty, '--resume']),
      /--out: expected a run directory written by 'entk train' to --resume \(it holds no config.json; to start a new run there, give --data\)/,
    );
    expect(await fs.readdir(empty)).toEqual([]);

    const damaged = path.join(root, 'damaged');
    await fs.cp(run, damaged, { recursive: true });
    await fs.rm(path.join(damaged, 'kernels'), { recursive: true });
    const last = (await fs.readdir(path.join(damaged, 'checkpoints')))
      .filter((n) => n.startsWith('step-'))
      .sort()
      .pop()!;
    await fs.rm(path.join(damaged, 'checkpoints', last), { recursive: true });
    const ckpt = path.join(damaged, 'checkpoints', last);
    expectOneLineError(
      await runCli(['kernel', '--run', damaged, '--points', 'train:4']),
      new RegExp(`^entk: error: ${ckpt}: missing \\(listed in .*index.json\\)$`),
    );
    expectOneLineError(
      await runCli(['train', '--out', damaged, '--resume']),
      new RegExp(`^entk: error: ${ckpt}: missing \\(the last checkpoint listed in .*index.json\\)$`),
    );
  });

  it('removes the temporaries of dead writers beside a run, inside it and beside a store; keeps live ones', async () => {
    const dead = deadPid();
    const parent = path.dirname(run);
    const besideRun = path.join(parent, `.run.tmp-${dead}-0123abcd`);
    const insideRun = path.join(run, 'checkpoints', `.step-000100.tmp-${dead}-89abcdef`);
    const liveOne = path.join(run, 'checkpoints', `.step-000200.tmp-${process.pid}-01234567`);
    const besideStore = path.join(path.dirname(store), `.${path.basename(store)}.tmp-${dead}-feedbeef`);
    for (const d of [besideRun, insideRun, liveOne, besideStore]) {
      await fs.mkdir(d, { recursive: true });
      await fs.writeFile(path.join(d, 'weights.bin'), Buffer.alloc(1024));
    }
    const r = await runCli(['train', '--out', run, '--resume', '--steps', '8']);
    expect(r.status, r.stderr).toBe(0);
    await expect(fs.access(besideRun)).rejects.toThrow();
    await expect(fs.access(insideRun)).rejects.toThrow();
    await fs.access(liveOne); // its writer (this test) is alive
    await fs.access(besideStore); // not written yet
    const k = await runCli([
      'kernel',
      '--run',
      run,
      '--points',
      'train:4',
      '--checkpoint',
      'step-000004',
      '--overwrite',
    ]);
    expect(k.status, k.stderr).toBe(0);
    await expect(fs.access(besideStore)).rejects.toThrow();
    await fs.rm(liveOne, { recursive: true });
  });
});
