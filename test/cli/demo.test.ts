/** `entk demo`: its options, and a one-line error for an unusable output directory (the full run is in test/experiment/demo-browser.test.ts). */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../util/temp-dir.js';
import { runCli } from './run-cli.js';

describe('entk demo', async () => {
  const dir = tempDir('cli-demo');

  it('is listed and documents its options', async () => {
    const help = await runCli(['--help']);
    expect(help.stdout).toMatch(/\n {2}demo \[options\] +run the demo experiment/);
    expect(help.stdout).toMatch(/\n {2}experiment \[options\] <config> +run an experiment config/);
    const r = await runCli(['demo', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--out <dir>');
    const help1 = r.stdout.replace(/\s+/g, ' ');
    expect(help1).toContain('(default: runs/demo, runs/demo-transformer for --preset transformer)');
    expect(help1).toMatch(/--preset <name> digits .*\| transformer .*\(default: "digits"\)/);
    expect(r.stdout).toContain('--force');
    expect(r.stdout).toContain('--json');
  });

  it('refuses an unknown preset in one line, naming the choices', async () => {
    const r = await runCli(['demo', '--preset', 'vision', '--out', path.join(dir, 'never')]);
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'entk: error: --preset: expected one of digits, transformer, received "vision"',
    ]);
    await expect(fs.stat(path.join(dir, 'never'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a file as its output directory in one line', async () => {
    const file = path.join(dir, 'a-file');
    await fs.writeFile(file, 'x');
    const r = await runCli(['demo', '--out', file]);
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `entk: error: --out: expected a directory for the experiment (this is a file), received ${JSON.stringify(file)}`,
    ]);
  });
});
