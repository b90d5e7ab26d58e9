// Tokenisation for entk's transformer (src/embed/tokenize.ts) with the shipped tiny-BERT tokenizer:
// ids then mask, [CLS] … [SEP], cut to the first maxLength tokens, padded with the pad id; checked
// against transformers.js's own padded/truncated output.
import { AutoTokenizer, env } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/index.js';
import { resolveTokenizerDir, tokenizeDataset, tokenizeTexts } from '../../src/embed/index.js';

const TEXTS = [
  'The soup needs more salt.',
  'Rain',
  'one two three four five six seven eight nine ten eleven',
];

describe('tokenizeTexts', () => {
  it('gives ids then mask per text, equal to transformers.js padding to max_length with truncation', async () => {
    const L = 8;
    const t = await tokenizeTexts(TEXTS, { tokenizer: 'models/tiny-bert', maxLength: L });
    expect(t).toMatchObject({ maxLength: L, vocabSize: 950, padId: 0, truncated: 1 });
    expect(t.x.length).toBe(TEXTS.length * 2 * L);
    env.allowRemoteModels = false;
    const tok = await AutoTokenizer.from_pretrained(await resolveTokenizerDir('models/tiny-bert'), {
      local_files_only: true,
    });
    const ref = tok(TEXTS, { padding: 'max_length', truncation: true, max_length: L });
    for (let s = 0; s < TEXTS.length; s++) {
      const row = Array.from(t.x.subarray(s * 2 * L, (s + 1) * 2 * L));
      const ids = Array.from(ref.input_ids.data as BigInt64Array, Number).slice(s * L, (s + 1) * L);
      const mask = Array.from(ref.attention_mask.data as BigInt64Array, Number).slice(s * L, (s + 1) * L);
      expect(row).toEqual([...ids, ...mask]);
    }
    // "Rain": [CLS] rain [SEP], then padding.
    expect(Array.from(t.x.subarray(2 * L + L, 2 * L + 2 * L))).toEqual([1, 1, 1, 0, 0, 0, 0, 0]);
    expect(t.x[2 * L]).toBe(2);
    expect(t.x[2 * L + 2]).toBe(3);
  });

  it('turns a text dataset into token features [n, 2L] with the ids, labels and texts kept', async () => {
    const ds = await loadDataset('text/topics.csv');
    const { dataset, tokenized } = await tokenizeDataset(ds, {
      tokenizer: 'models/tiny-bert',
      maxLength: 32,
    });
    expect(dataset.inputShape).toEqual([64]);
    expect(dataset.x.length).toBe(300 * 64);
    expect(dataset.ids).toEqual(ds.ids);
    expect(Array.from(dataset.y)).toEqual(Array.from(ds.y));
    expect(dataset.featureNames.slice(30, 34)).toEqual(['token_30', 'token_31', 'mask_0', 'mask_1']);
    expect(tokenized.truncated).toBe(0);
    expect(tokenized.revision).toMatch(/^sha256:/);
  });

  it("tokenises texts longer than the tokenizer's model_max_length (64), cut to the first L tokens", async () => {
    // WordNet glosses with tiny-BERT's letter-level pieces reach 153 tokens; a padded batch call of
    // transformers.js fails on them. Reference: the unpadded encoding, cut and padded by hand.
    const ds = await loadDataset('text/wordnet-glosses.csv');
    const texts = ds.text as string[];
    const L = 32;
    const t = await tokenizeTexts(texts, { tokenizer: 'models/tiny-bert', maxLength: L });
    env.allowRemoteModels = false;
    const tok = await AutoTokenizer.from_pretrained(await resolveTokenizerDir('models/tiny-bert'), {
      local_files_only: true,
    });
    let longest = 0;
    let truncated = 0;
    for (let s = 0; s < texts.length; s += 37) {
      const full = tok.encode(texts[s] as string);
      longest = Math.max(longest, full.length);
      const ids = Array.from({ length: L }, (_, i) => full[i] ?? 0);
      const mask = Array.from({ length: L }, (_, i) => (i < full.length ? 1 : 0));
      expect(Array.from(t.x.subarray(s * 2 * L, (s + 1) * 2 * L))).toEqual([...ids, ...mask]);
    }
    for (const text of texts) if (tok.encode(text).length > L) truncated++;
    expect(longest).toBeGreaterThan(64);
    expect(t.truncated).toBe(truncated);
  });

  it('refuses a directory without a tokenizer and a bad maxLength by name', async () => {
    await expect(tokenizeTexts(['a'], { tokenizer: 'no/such/dir', maxLength: 4 })).rejects.toThrow(
      /tokenizer \(--tokenizer\): expected a local model directory containing tokenizer\.json and tokenizer_config\.json \(not found\)/,
    );
    await expect(tokenizeTexts(['a'], { tokenizer: 'data', maxLength: 4 })).rejects.toThrow(
      /tokenizer\.json is missing/,
    );
    await expect(tokenizeTexts(['a'], { tokenizer: 'models/tiny-bert', maxLength: 0 })).rejects.toThrow(
      /maxLength: expected a positive integer/,
    );
  });
});
