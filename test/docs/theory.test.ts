/**
 * The theory page (docs/theory.md) is what the code, reports, notebooks and tests cite, so its
 * citations must resolve:
 * - every citation of a section (the page's path, '#', an anchor) written in src/, test/, bench/,
 *   notebooks/ or README.md names a heading of the page (GitHub heading slugs), and so does every
 *   in-page link to an anchor;
 * - no citation of a theory page other than the one under docs/ (e.g. the old top-level file)
 *   remains;
 * - every check of the page's "Checks" section is a numbered `### Check <n>: …` heading (1, 2, …
 *   in order) naming at least one test file, and every test file it names exists;
 * - README.md's own links work: `#anchors` name README headings, relative paths exist.
 * The checkers are pure functions; the first block shows that each of them reports a broken input.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PAGE = 'docs/theory.md';

/** GitHub's heading anchor: lower case, punctuation and symbols dropped, each space a hyphen. */
function githubSlug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link keeps its text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Markdown headings (ATX, outside fenced code blocks) with their anchors, duplicates suffixed -1, -2, … */
function headings(markdown: string): { level: number; text: string; slug: string; line: number }[] {
  const out: { level: number; text: string; slug: string; line: number }[] = [];
  const seen = new Map<string, number>();
  let fence: string | null = null;
  markdown.split('\n').forEach((raw, i) => {
    const f = /^ {0,3}(`{3,}|~{3,})/.exec(raw);
    if (f) {
      if (fence === null) fence = f[1]![0]!;
      else if (f[1]![0] === fence) fence = null;
      return;
    }
    if (fence !== null) return;
    const h = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(raw);
    if (!h) return;
    const base = githubSlug(h[2]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.push({ level: h[1]!.length, text: h[2]!, slug: n === 0 ? base : `${base}-${n}`, line: i + 1 });
  });
  return out;
}

/** The anchors of the citations of page sections in a text (an empty anchor is reported as ''). */
function citedAnchors(text: string): string[] {
  return [...text.matchAll(/docs\/theory\.md#([\p{L}\p{M}\p{N}_-]*)/gu)].map((m) => m[1]!);
}

/** Citations whose anchor is not among `slugs`. */
function missingAnchors(text: string, slugs: ReadonlySet<string>): string[] {
  return citedAnchors(text).filter((a) => !slugs.has(a));
}

/** Mentions of a theory file not at docs/theory.md (e.g. the old top-level one). */
function bareTheoryCitations(text: string): string[] {
  return [...text.matchAll(/(?<![\w./-])(?:[\w.-]+\/)*theory\.md\b/giu)]
    .map((m) => m[0])
    .filter((m) => !/(^|\/)docs\/theory\.md$/.test(m));
}

/** The checks of the "Checks" section: number, title and the test files each names. */
function parseChecks(markdown: string): { heading: string; number: number | null; tests: string[] }[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^## Checks\s*$/.test(l));
  if (start < 0) return [];
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  const checks: { heading: string; number: number | null; tests: string[] }[] = [];
  for (const line of lines.slice(start + 1, end)) {
    const h = /^### (.*)$/.exec(line);
    if (h) {
      const m = /^Check (\d+): \S/.exec(h[1]!);
      checks.push({ heading: h[1]!, number: m ? Number(m[1]) : null, tests: [] });
    } else if (checks.length > 0) {
      for (const t of line.matchAll(/\btest\/[\w./-]+\.test\.ts\b/g)) checks.at(-1)!.tests.push(t[0]);
    }
  }
  return checks;
}

/** Markdown link targets `[text](target)` outside fenced code blocks. */
function linkTargets(markdown: string): string[] {
  const out: string[] = [];
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (/^ {0,3}(`{3,}|~{3,})/.test(line)) inFence = !inFence;
    else if (!inFence)
      for (const m of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) out.push(m[1]!);
  }
  return out;
}

/** Files (relative to the repository) under `dir`, recursively, without node_modules and dot-folders. */
function filesUnder(dir: string): string[] {
  const abs = path.join(ROOT, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .filter((f) => !f.split(path.sep).some((part) => part === 'node_modules' || part.startsWith('.')))
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(path.join(ROOT, f)).isFile());
}

const page = readFileSync(path.join(ROOT, PAGE), 'utf8');
const slugs = new Set(headings(page).map((h) => h.slug));
const TEXT = /\.(ts|js|mjs|cjs|json|ipynb|md|yaml|yml|py|txt|sh)$/;
const citingFiles = [
  'README.md',
  ...['src', 'test', 'bench', 'notebooks'].flatMap(filesUnder).filter((f) => TEXT.test(f)),
];

describe('the checkers report broken input', () => {
  it('GitHub slugs of headings, with duplicates numbered', () => {
    expect(githubSlug('Check 1: implementations agree')).toBe('check-1-implementations-agree');
    expect(githubSlug('Equation (1)')).toBe('equation-1');
    expect(githubSlug('Dynamics: finetune, predict, compare')).toBe('dynamics-finetune-predict-compare');
    expect(githubSlug('The eNTK engine')).toBe('the-entk-engine');
    expect(githubSlug('Check 2 — `K` is PSD')).toBe('check-2--k-is-psd');
    expect(headings('# A\n```sh\n# not a heading\n```\n## A\n### B b\n').map((h) => h.slug)).toEqual([
      'a',
      'a-1',
      'b-b',
    ]);
  });

  it('a citation of a missing anchor, an empty anchor and a bare theory file are found', () => {
    // built from pieces, so that this file itself cites nothing broken
    const cite = (anchor: string) => `${PAGE}#${anchor}`;
    const known = new Set(['pop-mu']);
    const text = `see ${cite('pop-mu')}, ${cite('no-such-section')} and ${cite('')}.`;
    expect(citedAnchors(text)).toEqual(['pop-mu', 'no-such-section', '']);
    expect(missingAnchors(text, known)).toEqual(['no-such-section', '']);
    const old = ['THEORY', 'md'].join('.');
    expect(bareTheoryCitations(`(${old}, "Notation") and ../${cite('x')}`)).toEqual([old]);
    expect(bareTheoryCitations(`reference/${old}`)).toEqual([`reference/${old}`]);
    expect(bareTheoryCitations(`[page](../${cite('pop-mu')}) ${PAGE}`)).toEqual([]);
  });

  it('checks without a number, out of order or without a test file are visible', () => {
    const md = [
      '## Checks',
      '### Check 1: a',
      'Tests: `test/x/a.test.ts`, `test/y/b.test.ts`.',
      '### Check 3: skipped a number',
      'no test named',
      '### Something else',
      '## After',
      '### Check 9: not in the section',
    ].join('\n');
    expect(parseChecks(md)).toEqual([
      { heading: 'Check 1: a', number: 1, tests: ['test/x/a.test.ts', 'test/y/b.test.ts'] },
      { heading: 'Check 3: skipped a number', number: 3, tests: [] },
      { heading: 'Something else', number: null, tests: [] },
    ]);
  });
});

describe('docs/theory.md', () => {
  it('has unique, non-empty section anchors', () => {
    const all = headings(page);
    expect(all.length).toBeGreaterThan(20);
    expect(all.filter((h) => h.slug === '')).toEqual([]);
    // no two headings share a slug (a duplicate would get a '-1' suffix nobody expects)
    expect(new Set(all.map((h) => githubSlug(h.text))).size).toBe(all.length);
  });

  it('every in-page link names a heading of the page', () => {
    const broken = linkTargets(page)
      .filter((t) => t.startsWith('#'))
      .filter((t) => !slugs.has(t.slice(1)));
    expect(broken).toEqual([]);
  });

  it('every section cited in src, test, bench, notebooks and the README resolves', () => {
    expect(citingFiles.length).toBeGreaterThan(100);
    const broken: string[] = [];
    let count = 0;
    for (const f of citingFiles) {
      const text = readFileSync(path.join(ROOT, f), 'utf8');
      count += citedAnchors(text).length;
      for (const a of missingAnchors(text, slugs)) broken.push(`${f}: ${PAGE}#${a}`);
    }
    expect(broken).toEqual([]);
    expect(count).toBeGreaterThan(30); // the code does cite the page
  });

  it('no citation of a theory page other than the one under docs/ remains', () => {
    const found = citingFiles.flatMap((f) =>
      bareTheoryCitations(readFileSync(path.join(ROOT, f), 'utf8')).map((m) => `${f}: ${m}`),
    );
    expect(found).toEqual([]);
  });

  it('the Checks section lists numbered checks, each naming test files that exist', () => {
    const checks = parseChecks(page);
    expect(checks.length).toBeGreaterThanOrEqual(7);
    expect(checks.map((c) => c.number)).toEqual(checks.map((_, i) => i + 1));
    for (const c of checks) {
      expect(c.tests.length, c.heading).toBeGreaterThan(0);
      for (const t of c.tests) expect(existsSync(path.join(ROOT, t)), `${c.heading}: ${t}`).toBe(true);
    }
  });
});

describe('README.md', () => {
  it('its own links work: #anchors name its headings, relative paths exist', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const own = new Set(headings(readme).map((h) => h.slug));
    const broken: string[] = [];
    for (const t of linkTargets(readme)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(t)) continue; // https:, mailto:
      const [file, anchor] = t.split('#') as [string, string | undefined];
      if (file === '') {
        if (!own.has(anchor ?? '')) broken.push(t);
      } else if (!existsSync(path.join(ROOT, file))) broken.push(t);
      else if (file === PAGE && anchor !== undefined && !slugs.has(anchor)) broken.push(t);
    }
    expect(broken).toEqual([]);
  });
});
