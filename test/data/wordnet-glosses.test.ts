// data/text/wordnet-glosses.csv (WordNet 3.0 noun definitions labelled by lexicographer file): the
// shipped file loads through entk's real loader with the documented rows, classes and counts, and
// its generator (bin/generate-wordnet-glosses.ts) parses real data.noun lines and writes exactly
// the shipped bytes back from the file's own rows.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DATA_NOUN_SHA256,
  definitionOf,
  evenlySpaced,
  generateWordnetGlosses,
  glossesCsv,
  MAX_WORDS,
  MIN_WORDS,
  PER_CLASS,
  parseDataLine,
  selectGlosses,
  wordCount,
} from '../../bin/generate-wordnet-glosses.js';
import { classCounts, DATA_DIR, loadDataset, parseCsvTable } from '../../src/data/index.js';
import { embedDataset } from '../../src/embed/index.js';
import { DataFormatError, InvalidArgumentError } from '../../src/errors.js';
import { tempDir } from '../util/temp-dir.js';

const FILE = join(DATA_DIR, 'text', 'wordnet-glosses.csv');
const CLASSES = ['animal', 'artifact', 'food', 'person', 'plant'];
/** SHA-256 of the shipped file, as documented in data/text/README.md. */
const SHA256 = '66962c5b398b4301239d882b4da4aad2f2f8b128b1cfe39176365e7778200770';

// Verbatim lines of wordnet-base 1:3.0-37's /usr/share/wordnet/data.noun (with their two trailing spaces).
const LINE_TIGER_CUB =
  '01323068 05 n 01 tiger_cub 0 002 @ 01322685 n 0000 @ 02129604 n 0000 | a young tiger  ';
const LINE_BLAND_DIET =
  '07562017 13 n 02 bland_diet 0 ulcer_diet 0 001 @ 07561112 n 0000 | a diet of foods that are not irritating; "he ate a bland diet because of his colitis"  ';
const LINE_JOB =
  '03599628 06 n 01 job 0 003 @ 04602044 n 0000 + 02420807 v 0101 + 02461063 v 0103 | a workplace; as in the expression "on the job";  ';

describe('data/text/wordnet-glosses.csv', () => {
  it('is the file documented in data/text/README.md (SHA-256)', () => {
    expect(createHash('sha256').update(readFileSync(FILE)).digest('hex')).toBe(SHA256);
    expect(readFileSync(join(DATA_DIR, 'text', 'README.md'), 'utf8')).toContain(
      `SHA-256 of \`wordnet-glosses.csv\`: \`${SHA256}\``,
    );
  });

  it('loads by name through loadDataset: 1000 texts, 5 classes of 200, WordNet ids, no empty text', async () => {
    const ds = await loadDataset('text/wordnet-glosses.csv');
    expect(ds.name).toBe('wordnet-glosses');
    expect(ds.ids).toHaveLength(1000);
    expect(ds.classNames).toEqual(CLASSES);
    expect(classCounts(ds)).toEqual([200, 200, 200, 200, 200]);
    expect(ds.text).toHaveLength(1000);
    for (const t of ds.text!) {
      expect(t.trim()).toBe(t);
      expect(wordCount(t)).toBeGreaterThanOrEqual(MIN_WORDS);
      expect(wordCount(t)).toBeLessThanOrEqual(MAX_WORDS);
    }
    expect(new Set(ds.ids).size).toBe(1000);
    for (const id of ds.ids) expect(id).toMatch(/^\d{8}-n$/);
    // First and last rows as in the file.
    expect([ds.ids[0], ds.text![0], ds.classNames[ds.y[0]!]]).toEqual([
      '01316422-n',
      'any animal that feeds on refuse and other decaying organic matter',
      'animal',
    ]);
    expect([ds.ids[999], ds.text![999]]).toEqual([
      '13236726-n',
      'large genus of climbing shrubs of Australia and Asia and Polynesia',
    ]);
    expect(ds.classNames[ds.y[999]!]).toBe('plant');
  });

  it('rows come class by class in label order, each class in WordNet offset order', () => {
    const table = parseCsvTable(readFileSync(FILE, 'utf8'), FILE);
    expect(table.columns).toEqual(['id', 'text', 'label']);
    const labels = table.records.map((r) => r.cells[2] as string);
    expect(labels).toEqual(CLASSES.flatMap((c) => Array<string>(PER_CLASS).fill(c)));
    for (let i = 1; i < 1000; i++) {
      if (labels[i] !== labels[i - 1]) continue;
      expect((table.records[i]!.cells[0] as string) > (table.records[i - 1]!.cells[0] as string)).toBe(true);
    }
  });

  it('the generator writes the shipped bytes back from the rows it reads', () => {
    const text = readFileSync(FILE, 'utf8');
    const rows = parseCsvTable(text, FILE).records.map(({ cells: [id, t, label] }) => ({
      id: id as string,
      text: t as string,
      label: label as string,
    }));
    expect(glossesCsv(rows)).toBe(text);
  });

  it('embeds with the tiny BERT backbone: [1000, 32] finite, L2-normalised features, ids and labels kept', async () => {
    const text = await loadDataset('text/wordnet-glosses.csv');
    const { dataset } = await embedDataset(text, {
      backbone: join(DATA_DIR, '..', 'models', 'tiny-bert'),
      cacheDir: tempDir('wordnet-embed'),
    });
    expect(dataset.inputShape).toEqual([32]);
    expect(dataset.ids).toEqual(text.ids);
    expect(Array.from(dataset.y)).toEqual(Array.from(text.y));
    for (let i = 0; i < 1000; i++) {
      let norm = 0;
      for (let j = 0; j < 32; j++) {
        const v = dataset.x[i * 32 + j]!;
        expect(Number.isFinite(v)).toBe(true);
        norm += v * v;
      }
      expect(Math.abs(Math.sqrt(norm) - 1)).toBeLessThan(1e-5);
    }
  });
});

describe('bin/generate-wordnet-glosses.ts', () => {
  it('parses data.noun lines: offset, lexicographer file, words and the definition without examples', () => {
    expect(parseDataLine(LINE_TIGER_CUB, 1)).toEqual({
      offset: '01323068',
      lexFile: 5,
      words: ['tiger_cub'],
      definition: 'a young tiger',
    });
    expect(parseDataLine(LINE_BLAND_DIET, 1)).toEqual({
      offset: '07562017',
      lexFile: 13,
      words: ['bland_diet', 'ulcer_diet'],
      definition: 'a diet of foods that are not irritating',
    });
    // A quote not introduced by "; " is part of the definition; the trailing ";" is dropped.
    expect(parseDataLine(LINE_JOB, 1)!.definition).toBe('a workplace; as in the expression "on the job"');
    expect(
      parseDataLine('  1 This software and database is being provided to you, the LICENSEE, by  ', 1),
    ).toBeNull();
    expect(() => parseDataLine('00001740 03 v 01 entity 0 000 | that which is', 31)).toThrow(DataFormatError);
    expect(() => parseDataLine('garbage', 7, 'x/data.noun')).toThrow(/x\/data\.noun.*7/);
  });

  it('definitionOf cuts at the first quoted example', () => {
    expect(definitionOf('"an example only"')).toBe('');
    expect(definitionOf('red; "a red ball"; "red wine"  ')).toBe('red');
    expect(definitionOf('no examples here  ')).toBe('no examples here');
  });

  it('evenlySpaced picks ⌊(2i+1)n/(2k)⌋, strictly increasing and inside [0, n)', () => {
    expect(evenlySpaced(10, 5)).toEqual([1, 3, 5, 7, 9]);
    expect(evenlySpaced(7, 3)).toEqual([1, 3, 5]);
    expect(evenlySpaced(5, 5)).toEqual([0, 1, 2, 3, 4]);
    expect(evenlySpaced(4, 0)).toEqual([]);
    const picks = evenlySpaced(7509, PER_CLASS);
    expect(picks).toHaveLength(PER_CLASS);
    for (let i = 1; i < picks.length; i++) expect(picks[i]!).toBeGreaterThan(picks[i - 1]!);
    expect(picks[0]).toBeGreaterThanOrEqual(0);
    expect(picks[PER_CLASS - 1]).toBeLessThan(7509);
    expect(() => evenlySpaced(3, 4)).toThrow(InvalidArgumentError);
  });

  it('selectGlosses keeps the five classes, drops too short definitions and other lexicographer files', () => {
    // A file of PER_CLASS valid synsets per class, plus a too-short one and one of noun.act (04).
    const lines: string[] = ['  1 licence header line  '];
    let offset = 1000;
    const line = (lex: string, gloss: string) =>
      `${String(offset++).padStart(8, '0')} ${lex} n 01 w 0 000 | ${gloss}  `;
    for (const lex of ['05', '06', '13', '18', '20']) {
      lines.push(line(lex, 'two words'));
      for (let i = 0; i < PER_CLASS; i++)
        lines.push(line(lex, `definition number ${i} of ${lex}; "example"`));
    }
    lines.push(line('04', 'an act of some kind here'));
    const rows = selectGlosses(`${lines.join('\n')}\n`);
    expect(rows).toHaveLength(5 * PER_CLASS);
    expect(rows.map((r) => r.label)).toEqual(CLASSES.flatMap((c) => Array<string>(PER_CLASS).fill(c)));
    expect(rows[0]).toEqual({ id: '00001001-n', text: 'definition number 0 of 05', label: 'animal' });
    expect(rows.some((r) => r.text === 'two words' || r.text.startsWith('an act'))).toBe(false);
  });

  it('glossesCsv quotes fields with commas or quotes so that the loader reads them back', () => {
    const rows = [
      { id: 'a-n', text: 'plain text', label: 'food' },
      { id: 'b-n', text: 'salt, pepper and "spice"', label: 'food' },
    ];
    const csv = glossesCsv(rows);
    expect(csv).toBe('id,text,label\na-n,plain text,food\nb-n,"salt, pepper and ""spice""",food\n');
    expect(parseCsvTable(csv, 'x.csv').records.map((r) => r.cells)).toEqual(
      rows.map((r) => [r.id, r.text, r.label]),
    );
  });

  it('refuses an input other than wordnet-base 1:3.0-37 data.noun, naming both checksums, and writes nothing', async () => {
    const dir = tempDir('wordnet-generator');
    const input = join(dir, 'data.noun');
    writeFileSync(input, `${LINE_TIGER_CUB}\n`);
    const out = join(dir, 'out.csv');
    const error = await generateWordnetGlosses(input, out).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toContain(DATA_NOUN_SHA256);
    expect((error as Error).message).toContain(
      createHash('sha256').update(`${LINE_TIGER_CUB}\n`).digest('hex'),
    );
    expect(existsSync(out)).toBe(false);
  });
});
