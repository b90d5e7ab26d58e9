// The README is executed: every ```sh, ```bash, ```python and ```ts block, in the order it appears,
// in one fresh temporary directory (so later blocks see what earlier ones made, as a reader following
// the README would). `entk` and `npx entk` run this checkout's CLI (node_modules/.bin/entk in the
// temporary directory); `import … from 'entk'` resolves to this checkout's sources; Python blocks run
// with Debian's python3 (NumPy). A block is only left out with a directive in an HTML comment on the
// line before it, which the reader does not see and which must say why:
//   <!-- readme-test: skip <reason> -->      not run (e.g. the set-up commands CI itself runs)
//   <!-- readme-test: file <name> -->        written to <name> instead of run (a script a later block runs)
// A block fails the test when it exits non-zero; its output is in the failure message.
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../util/process.js';
import { tempDir } from '../util/temp-dir.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PYTHON = process.env.ENTK_PYTHON ?? '/usr/bin/python3';

interface ReadmeBlock {
  /** 1-based line of the opening fence. */
  line: number;
  lang: 'sh' | 'python' | 'ts';
  code: string;
  directive: { kind: 'skip' | 'file'; arg: string } | null;
}

/** The fenced code blocks of a Markdown text with their readme-test directives. */
function readmeBlocks(text: string): ReadmeBlock[] {
  const lines = text.split('\n');
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]!);
    if (!open) {
      if (/^```/.test(lines[i]!)) {
        const close = lines.indexOf('```', i + 1);
        i = close < 0 ? lines.length : close;
      }
      continue;
    }
    const close = lines.indexOf('```', i + 1);
    if (close < 0) throw new Error(`README.md line ${i + 1}: unclosed code block`);
    const lang = open[1]!;
    const code = lines.slice(i + 1, close).join('\n');
    const prev = lines[i - 1] ?? '';
    const m = /^<!--\s*readme-test:\s*(skip|file)\s+(.+?)\s*-->$/.exec(prev.trim());
    const directive = m ? { kind: m[1] as 'skip' | 'file', arg: m[2]! } : null;
    const kind =
      lang === 'sh' || lang === 'bash' ? 'sh' : lang === 'python' ? 'python' : lang === 'ts' ? 'ts' : null;
    if (kind) blocks.push({ line: i + 1, lang: kind, code, directive });
    i = close;
  }
  return blocks;
}

/** Run a block's interpreter in the README's directory (up to 10 minutes), output merged. */
async function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const r = await runProcess(command, args, { cwd, env, timeoutMs: 600_000 });
  return { status: r.status, output: r.stdout + r.stderr };
}

const blocks = readmeBlocks(readFileSync(path.join(repo, 'README.md'), 'utf8'));

describe('README.md, executed', () => {
  const dir = tempDir('readme');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CI: 'true',
    PATH: `${path.join(dir, 'node_modules/.bin')}${path.delimiter}${process.env.PATH}`,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --conditions=entk-source --import=tsx`.trim(),
  };

  beforeAll(async () => {
    // A user's project with entk installed: node_modules/entk is this checkout (as `npm link` makes it).
    await fs.mkdir(path.join(dir, 'node_modules/.bin'), { recursive: true });
    await fs.symlink(repo, path.join(dir, 'node_modules/entk'), 'dir');
    await fs.symlink(path.join(repo, 'bin/entk.js'), path.join(dir, 'node_modules/.bin/entk'));
    await fs.symlink(path.join(repo, 'node_modules/tsx'), path.join(dir, 'node_modules/tsx'), 'dir');
    // entk's dependency tfjs, hoisted next to it as npm installs it (snippets build tfjs models).
    await fs.symlink(
      path.join(repo, 'node_modules/@tensorflow'),
      path.join(dir, 'node_modules/@tensorflow'),
      'dir',
    );
    await fs.writeFile(path.join(dir, 'package.json'), '{ "private": true, "type": "module" }\n');
  });

  it('has its blocks, and says why of every block it leaves out', () => {
    expect(blocks.length).toBeGreaterThan(10);
    for (const b of blocks.filter((x) => x.directive?.kind === 'skip')) {
      expect(b.directive!.arg.length, `README.md line ${b.line}: a skip must say why`).toBeGreaterThan(15);
    }
  });

  for (const [k, block] of blocks.entries()) {
    const title = `block ${k + 1} (line ${block.line}, ${block.lang}): ${block.code.split('\n')[0]!.slice(0, 70)}`;
    if (block.directive?.kind === 'skip') continue;
    it(title, async () => {
      if (block.directive?.kind === 'file') {
        await fs.writeFile(path.join(dir, block.directive.arg), `${block.code}\n`);
        return;
      }
      const file = path.join(
        dir,
        `.readme-block-${k + 1}.${block.lang === 'sh' ? 'sh' : block.lang === 'python' ? 'py' : 'mts'}`,
      );
      await fs.writeFile(
        file,
        block.lang === 'sh' ? `set -euo pipefail\n${block.code}\n` : `${block.code}\n`,
      );
      const r =
        block.lang === 'sh'
          ? await run('bash', [file], dir, env)
          : block.lang === 'python'
            ? await run(PYTHON, [file], dir, env)
            : await run(process.execPath, [file], dir, env);
      expect(
        r.status,
        `README.md line ${block.line} failed:\n${block.code}\n--- output ---\n${r.output}`,
      ).toBe(0);
    }, 600_000);
  }
});
