// models/wordnet-tokenizer: its generator is deterministic and the committed files are its output, and
// transformers.js's AutoTokenizer (through tokenizeTexts) splits WordNet definitions into whole words.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SPECIAL_TOKENS } from '../../models/generate-tiny-bert.js';
import {
  generateWordnetTokenizer,
  MIN_COUNT,
  WORDNET_DATASET,
  wordnetVocab,
} from '../../models/generate-wordnet-tokenizer.js';
import { loadDataset } from '../../src/data/index.js';
import { tokenizeTexts } from '../../src/embed/index.js';

const csv = readFileSync(WORDNET_DATASET, 'utf8');
const DIR = path.resolve(path.dirname(WORDNET_DATASET), '../../models/wordnet-tokenizer');

describe('models/wordnet-tokenizer', () => {
  it('two runs of the generator give identical bytes, equal to the committed files', () => {
    const a = generateWordnetTokenizer(csv);
    const b = generateWordnetTokenizer(csv);
    expect([...a.keys()].sort()).toEqual(['config.json', 'tokenizer.json', 'tokenizer_config.json']);
    for (const [rel, bytes] of a) {
      expect(Buffer.compare(Buffer.from(bytes), Buffer.from(b.get(rel)!)), rel).toBe(0);
      expect(
        Buffer.compare(Buffer.from(bytes), readFileSync(path.join(DIR, rel))),
        `models/wordnet-tokenizer/${rel} is stale: regenerate it`,
      ).toBe(0);
    }
  });

  it('holds the special tokens first and exactly the words seen at least MIN_COUNT times', () => {
    const vocab = wordnetVocab(csv);
    expect(vocab.slice(0, 5)).toEqual([...SPECIAL_TOKENS]);
    expect(new Set(vocab).size).toBe(vocab.length);
    // Independent count of the words (lower-cased alphanumeric runs) of the text column.
    const counts = new Map<string, number>();
    for (const line of csv.trim().split('\n').slice(1)) {
      const text = line.slice(line.indexOf(',') + 1, line.lastIndexOf(','));
      for (const w of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    for (const [w, c] of counts) {
      if (w.length === 1 && /[0-9]/.test(w)) continue; // digits are listed regardless
      expect(vocab.includes(w), `${w} (${c}×)`).toBe(c >= MIN_COUNT);
    }
    expect(() => wordnetVocab('id,label\n1,a\n')).toThrow(/no column "text"/);
  });

  it('tokenises definitions into words: [CLS] words [SEP], unknown words as one [UNK]', async () => {
    const vocab = wordnetVocab(csv);
    const id = (t: string) => vocab.indexOf(t);
    const L = 12;
    const t = await tokenizeTexts(['A very young mammal', 'the zzyzx mammals'], {
      tokenizer: 'models/wordnet-tokenizer',
      maxLength: L,
    });
    expect(t.vocabSize).toBe(vocab.length);
    expect(t.padId).toBe(0);
    const row = (r: number) => Array.from(t.x.subarray(r * 2 * L, r * 2 * L + L));
    const mask = (r: number) => Array.from(t.x.subarray(r * 2 * L + L, (r + 1) * 2 * L));
    const words = ['[CLS]', 'a', 'very', 'young', 'mammal', '[SEP]'].map(id);
    expect(words.every((i) => i >= 0)).toBe(true);
    expect(row(0)).toEqual([...words, ...Array(L - 6).fill(0)]);
    expect(mask(0)).toEqual([...Array(6).fill(1), ...Array(L - 6).fill(0)]);
    // 'zzyzx' is not in the vocabulary (no letters to spell it): one [UNK]; 'mammals' = mammal ##s.
    expect(id('mammals')).toBe(-1);
    expect(row(1).slice(0, 6)).toEqual(['[CLS]', 'the', '[UNK]', 'mammal', '##s', '[SEP]'].map(id));
  });

  it('keeps WordNet definitions short: median 13 tokens, 7 % over the experiment’s 24', async () => {
    const ds = await loadDataset('text/wordnet-glosses.csv');
    const L = 64;
    const t = await tokenizeTexts(ds.text!, { tokenizer: 'models/wordnet-tokenizer', maxLength: L });
    const n = ds.ids.length;
    const lengths = Array.from({ length: n }, (_, i) =>
      t.x.subarray(i * 2 * L + L, (i + 1) * 2 * L).reduce((a, b) => a + b, 0),
    ).sort((a, b) => a - b);
    expect(t.truncated).toBe(0);
    expect(lengths[n >> 1]).toBe(13);
    expect(lengths.filter((l) => l > 24).length).toBe(74);
  });
});
