// entk as a package: `npm pack` the repository, install the tarball into a fresh project outside the
// repository (so neither its .npmrc nor its node_modules are seen; only the npm registry is
// reached), then use it the ways a user would: a plain ESM script (train, eNTK of two point sets,
// POP-MU), CommonJS through dynamic import, the `entk` binary, and a TypeScript file type-checked with
// the strictest options.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ProcessResult, runProcess } from '../util/process.js';
import { tempDir } from '../util/temp-dir.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.join(repo, 'test/package/fixtures');
const TFJS_BANNER = /looks like you are running TensorFlow\.js/;

/**
 * The environment of a process started outside the repository: without the npm_* variables that
 * `npm test` exports (they carry the repository's .npmrc settings into child npm processes).
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k)) env[k] = v;
  }
  return { ...env, CI: 'true' };
}

type Ran = ProcessResult;

/** Run a command outside the repository (clean npm environment). */
const run = (command: string, args: string[], cwd: string): Promise<Ran> =>
  runProcess(command, args, { cwd, env: cleanEnv(), timeoutMs: 900_000 });

function ok(r: Ran, what: string): Ran {
  expect(r.status, `${what}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

let project: string;
let tarball: string;
let packedFiles: string[];

describe('the packed package in a fresh project', () => {
  beforeAll(async () => {
    const tmp = tempDir('pack');
    project = path.join(tmp, 'user-project');
    await fs.mkdir(project);
    const packed = ok(await run('npm', ['pack', '--json', '--pack-destination', tmp], repo), 'npm pack');
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = path.join(tmp, info[0]!.filename);
    packedFiles = info[0]!.files.map((f) => f.path);
    await fs.writeFile(
      path.join(project, 'package.json'),
      `${JSON.stringify({ name: 'user-project', private: true, type: 'module' }, null, 2)}\n`,
    );
    for (const f of ['usage.mjs', 'usage.cjs', 'usage.ts']) {
      await fs.copyFile(path.join(fixtures, f), path.join(project, f));
    }
    ok(
      await run('npm', ['install', '--no-audit', '--no-fund', tarball, '@types/node@20'], project),
      'npm install of the tarball',
    );
  }, 900_000);

  it('ships the build, the data and the CLI, and nothing of the development tree', () => {
    for (const f of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/kernel/worker.js',
      'bin/entk.js',
      'data/digits.csv.gz',
    ]) {
      expect(packedFiles).toContain(f);
    }
    expect(packedFiles).toContain('dist/experiment/configs/demo.yaml');
    const stray = packedFiles.filter((f) => /^(src|test|bench|notebooks|exported|runs|\.ci)\//.test(f));
    expect(stray).toEqual([]);
  });

  it('runs a plain ESM script: train, eNTK of two point sets, POP-MU — with no tfjs banner', async () => {
    const r = ok(await run(process.execPath, ['usage.mjs', 'run'], project), 'node usage.mjs');
    expect(r.stderr).not.toMatch(TFJS_BANNER);
    expect(r.stdout).not.toMatch(TFJS_BANNER);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      backend: string;
      testAccuracy: number;
      kTrainShape: number[];
      kTestTrainShape: number[];
      implementation: string;
      steps: number;
      finalLogProbs: number[];
    };
    expect(out.backend).toBe('wasm');
    expect(out.testAccuracy).toBeGreaterThan(0.5); // 10 classes: chance is 0.1
    expect(out.kTrainShape).toEqual([120, 120]);
    expect(out.kTestTrainShape).toEqual([50, 120]);
    expect(out.implementation).toBe('structured');
    expect(out.steps).toBe(11);
    // Every tracked point's distribution is normalised: logsumexp of its V log-probabilities is 0.
    for (let p = 0; p < 17; p++) {
      const row = out.finalLogProbs.slice(p * 10, p * 10 + 10);
      expect(Math.log(row.reduce((s, l) => s + Math.exp(l), 0))).toBeCloseTo(0, 10);
    }
  });

  it('is reachable from CommonJS through dynamic import, including a subpath', async () => {
    const r = ok(await run(process.execPath, ['usage.cjs'], project), 'node usage.cjs');
    expect(JSON.parse(r.stdout)).toEqual({
      n: 150,
      classes: ['setosa', 'versicolor', 'virginica'],
      terms: 1,
    });
  });

  it('installs the entk binary, which runs the compiled build', async () => {
    const r = ok(
      await run(path.join(project, 'node_modules/.bin/entk'), ['info', '--json'], project),
      'entk info',
    );
    expect(r.stderr).not.toMatch(TFJS_BANNER);
    expect(JSON.parse(r.stdout).backend).toBe('wasm');
  });

  it('type-checks a user script under --strict --noUncheckedIndexedAccess --exactOptionalPropertyTypes', async () => {
    // No skipLibCheck: entk's own declarations are checked too. Declarations of third-party packages
    // (tfjs-layers, vega-lite) do not all hold under exactOptionalPropertyTypes; those are theirs, and
    // a user sets skipLibCheck (tsc --init's default) for them. Every error in the user's file or in
    // entk's declarations fails the test.
    const tsc = path.join(repo, 'node_modules/typescript/bin/tsc');
    const flags = ['--strict', '--noUncheckedIndexedAccess', '--exactOptionalPropertyTypes'];
    const common = [
      '--noEmit',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
    ];
    const r = await run(process.execPath, [tsc, ...common, ...flags, 'usage.ts'], project);
    const errors = r.stdout.split('\n').filter((line) => /error TS\d+/.test(line));
    const ours = errors.filter((line) => !/^node_modules\/(?!entk\/)/.test(line));
    expect(ours, r.stdout).toEqual([]);
    // With skipLibCheck, as a user would have it: no error at all.
    const skip = await run(
      process.execPath,
      [tsc, ...common, ...flags, '--skipLibCheck', 'usage.ts'],
      project,
    );
    expect(skip.status, skip.stdout + skip.stderr).toBe(0);
  });
});
