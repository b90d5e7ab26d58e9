/**
 * Generate `data/text/wordnet-glosses.csv`: 1000 WordNet 3.0 noun definitions (glosses) labelled by
 * the lexicographer file of their synset (its "supersense"), 200 for each of five classes.
 *
 *   apt-get download wordnet-base=1:3.0-37
 *   dpkg-deb -x wordnet-base_1%3a3.0-37_all.deb /tmp/wordnet-base
 *   node bin/run-ts.js bin/generate-wordnet-glosses.ts /tmp/wordnet-base/usr/share/wordnet/data.noun [out]
 *
 * (default out: data/text/wordnet-glosses.csv). The input must be exactly the data.noun of Debian's
 * wordnet-base 1:3.0-37 (its SHA-256 is checked), so the output is the same to the byte on every run.
 *
 * data.noun holds one synset per line (wndb(5WN)):
 *   offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt [ptr ...] | gloss
 * with w_cnt in hexadecimal, and a licence header of lines starting with two spaces. The gloss is a
 * definition followed by optional example sentences in double quotes ("; \"...\""); the text kept is
 * the definition alone. Definitions of fewer than `MIN_WORDS` or more than `MAX_WORDS` words (split on
 * spaces) are dropped: many genus synsets are defined by a bare plural ("newts"), and a few glosses
 * run to 60+ words. Within each class the remaining synsets are taken in file order and `PER_CLASS` of
 * them picked evenly spaced (index ⌊(2i + 1)·n / (2·PER_CLASS)⌋), so the sample covers the whole file.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DataFormatError, InvalidArgumentError } from '../src/errors.js';
import { writeFileAtomic } from '../src/util/atomic.js';

/** Lexicographer file number (lexnames(5WN)) → class label, for the five classes kept. */
export const WORDNET_CLASSES: ReadonlyMap<number, string> = new Map([
  [5, 'animal'], // noun.animal
  [6, 'artifact'], // noun.artifact
  [13, 'food'], // noun.food
  [18, 'person'], // noun.person
  [20, 'plant'], // noun.plant
]);

/** Examples kept per class. */
export const PER_CLASS = 200;

/** Length bounds (in space-separated words, inclusive) of the definitions kept. */
export const MIN_WORDS = 4;
export const MAX_WORDS = 40;

/** Number of space-separated words of `text`. */
export function wordCount(text: string): number {
  return text.split(' ').filter((w) => w !== '').length;
}

/** SHA-256 of /usr/share/wordnet/data.noun in Debian's wordnet-base 1:3.0-37. */
export const DATA_NOUN_SHA256 = 'fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2';

/** One noun synset of data.noun. */
export interface Synset {
  /** 8-digit byte offset of the line: the synset's id in WordNet 3.0. */
  offset: string;
  /** Lexicographer file number (0..44). */
  lexFile: number;
  words: string[];
  /** The gloss without its example sentences. */
  definition: string;
}

/** One row of the generated file. */
export interface GlossRow {
  id: string;
  text: string;
  label: string;
}

/** The definition part of a gloss: everything before the first quoted example, trimmed. */
export function definitionOf(gloss: string): string {
  const example = gloss.search(/(^|;\s*)"/);
  return (example < 0 ? gloss : gloss.slice(0, example)).replace(/[;\s]+$/, '').trim();
}

/** Parse one line of data.noun; null for a licence header line (starting with two spaces). */
export function parseDataLine(line: string, lineNumber: number, file = 'data.noun'): Synset | null {
  if (line.startsWith('  ')) return null;
  const bar = line.indexOf(' | ');
  const fields = (bar < 0 ? line : line.slice(0, bar)).split(' ');
  const [offset, lexFile, ssType, wCnt] = fields;
  if (bar < 0 || !/^\d{8}$/.test(offset ?? '') || ssType !== 'n' || !/^[0-9a-f]{2}$/.test(wCnt ?? '')) {
    throw new DataFormatError(
      file,
      'not a WordNet noun synset line (offset lex_filenum n w_cnt ... | gloss)',
      lineNumber,
    );
  }
  const count = Number.parseInt(wCnt!, 16);
  const words = Array.from({ length: count }, (_, k) => fields[4 + 2 * k]!);
  return { offset: offset!, lexFile: Number(lexFile), words, definition: definitionOf(line.slice(bar + 3)) };
}

/** `k` indices spread evenly over 0..n-1: ⌊(2i + 1)·n / (2k)⌋ for i = 0..k-1 (needs k ≤ n). */
export function evenlySpaced(n: number, k: number): number[] {
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new InvalidArgumentError('k', k, `an integer in [0, ${n}]`);
  }
  return Array.from({ length: k }, (_, i) => Math.floor(((2 * i + 1) * n) / (2 * k)));
}

/** The rows of the dataset from the text of data.noun, class by class in label order. */
export function selectGlosses(dataNoun: string, file = 'data.noun'): GlossRow[] {
  const byClass = new Map<number, Synset[]>([...WORDNET_CLASSES.keys()].map((lex) => [lex, []]));
  dataNoun.split('\n').forEach((line, i) => {
    if (line === '') return;
    const synset = parseDataLine(line, i + 1, file);
    if (synset === null) return;
    const words = wordCount(synset.definition);
    if (words >= MIN_WORDS && words <= MAX_WORDS) byClass.get(synset.lexFile)?.push(synset);
  });
  const rows: GlossRow[] = [];
  for (const [lex, label] of [...WORDNET_CLASSES].sort((a, b) => a[1].localeCompare(b[1]))) {
    const synsets = byClass.get(lex)!;
    for (const i of evenlySpaced(synsets.length, PER_CLASS)) {
      const s = synsets[i]!;
      rows.push({ id: `${s.offset}-n`, text: s.definition, label });
    }
  }
  return rows;
}

/** An RFC-4180 CSV field: quoted when it holds a comma, a quote, a line break or edge spaces. */
function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The CSV text `id,text,label` (LF line ends, final newline). */
export function glossesCsv(rows: GlossRow[]): string {
  return ['id,text,label', ...rows.map((r) => [r.id, r.text, r.label].map(csvField).join(','))]
    .map((line) => `${line}\n`)
    .join('');
}

/**
 * Read `input` (wordnet-base 1:3.0-37's data.noun, checked by SHA-256) and write the dataset to `out`.
 * @returns the number of rows written
 */
export async function generateWordnetGlosses(input: string, out: string): Promise<number> {
  const bytes = readFileSync(input);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== DATA_NOUN_SHA256) {
    throw new InvalidArgumentError(
      `data.noun ${input}`,
      `SHA-256 ${sha}`,
      `wordnet-base 1:3.0-37's /usr/share/wordnet/data.noun (SHA-256 ${DATA_NOUN_SHA256})`,
    );
  }
  const rows = selectGlosses(bytes.toString('latin1'), input);
  await writeFileAtomic(out, glossesCsv(rows));
  return rows.length;
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const [input, out = 'data/text/wordnet-glosses.csv'] = process.argv.slice(2);
  if (!input) {
    console.error('usage: node bin/run-ts.js bin/generate-wordnet-glosses.ts DATA_NOUN [OUT]');
    process.exit(2);
  }
  console.log(`wrote ${out}: ${await generateWordnetGlosses(input, out)} rows`);
}
