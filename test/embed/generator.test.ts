// The tiny-model generators are deterministic and the committed models are exactly their output.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildVocab,
  generateTinyBert,
  SPECIAL_TOKENS,
  TINY_BERT_DATASET,
} from '../../models/generate-tiny-bert.js';
import { generateTinyVit } from '../../models/generate-tiny-vit.js';
import { erf, TINY_BERT_DIR, TINY_VIT_DIR } from './reference.js';

const csv = readFileSync(TINY_BERT_DATASET, 'utf8');

describe('tiny model generators', () => {
  it('tiny-bert: two runs give identical bytes, equal to the committed files', () => {
    const a = generateTinyBert(csv);
    const b = generateTinyBert(csv);
    expect([...a.keys()].sort()).toEqual([
      'config.json',
      'onnx/model.onnx',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    for (const [rel, bytes] of a) {
      expect(Buffer.compare(Buffer.from(bytes), Buffer.from(b.get(rel)!)), rel).toBe(0);
      const committed = readFileSync(path.join(TINY_BERT_DIR, rel));
      expect(
        Buffer.compare(Buffer.from(bytes), committed),
        `models/tiny-bert/${rel} is stale: regenerate it`,
      ).toBe(0);
    }
    // Small: a few hundred KB at most.
    expect(a.get('onnx/model.onnx')!.length).toBeLessThan(400_000);
  });

  it('tiny-vit: two runs give identical bytes, equal to the committed files', () => {
    const a = generateTinyVit();
    const b = generateTinyVit();
    for (const [rel, bytes] of a) {
      expect(Buffer.compare(Buffer.from(bytes), Buffer.from(b.get(rel)!)), rel).toBe(0);
      const committed = readFileSync(path.join(TINY_VIT_DIR, rel));
      expect(
        Buffer.compare(Buffer.from(bytes), committed),
        `models/tiny-vit/${rel} is stale: regenerate it`,
      ).toBe(0);
    }
  });

  it('the vocabulary starts with the special tokens and has no duplicates', () => {
    const vocab = buildVocab(csv);
    expect(vocab.slice(0, 5)).toEqual([...SPECIAL_TOKENS]);
    expect(new Set(vocab).size).toBe(vocab.length);
    expect(vocab).toContain('soup');
    expect(vocab).toContain('##s');
    expect(() => buildVocab('id,label\n1,a\n')).toThrow(/no column "text"/);
  });

  it('the reference erf is accurate (known values, odd symmetry)', () => {
    // erf(0.5), erf(1), erf(2), erf(3) to 15 digits (A&S table / mpmath).
    expect(erf(0.5)).toBeCloseTo(0.520499877813047, 13);
    expect(erf(1)).toBeCloseTo(0.842700792949715, 13);
    expect(erf(2)).toBeCloseTo(0.995322265018953, 13);
    expect(erf(3)).toBeCloseTo(0.999977909503001, 13);
    expect(erf(-1.3)).toBeCloseTo(-erf(1.3), 15);
  });
});
