// Jupyter kernel launcher for the entk notebooks (started by kernel.json as `node --import tsx launch.cjs`).
// Notebook cells import the library by its package name, `import { ... } from 'entk'`: tslab type-checks
// cells with its own TypeScript, which finds packages only under node_modules, so the launcher makes sure
// node_modules/entk points at this repository (a symlink, like `npm link`). tsx (loaded by --import)
// lets Node run the TypeScript sources.
const fs = require('node:fs');
const path = require('node:path');
const repoRoot = path.resolve(__dirname, '../../../..');
const link = path.join(repoRoot, 'node_modules', 'entk');
if (!fs.existsSync(link)) fs.symlinkSync('..', link, 'dir');
process.env.CI = process.env.CI || 'true';
require(path.join(repoRoot, 'node_modules/tslab/dist/main.js')).main();
