#!/usr/bin/env node
// `npm run build` (also run by `prepare`): compile src/ to dist/ (JavaScript + .d.ts) with the
// project's TypeScript, after removing the previous build, and copy the non-TypeScript assets the
// library reads at run time (the shipped experiment configs).
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
if (result.status !== 0) process.exit(result.status ?? 1);
cpSync(join(root, 'src/experiment/configs'), join(root, 'dist/experiment/configs'), { recursive: true });
