// Backbone resolution and the errors a user sees for missing or corrupt models (real loads, no mocks).
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BackboneNotFoundError,
  embedImages,
  embedTexts,
  requiredBackboneFiles,
  resolveBackbone,
} from '../../src/embed/index.js';
import { CorruptFileError } from '../../src/errors.js';
import { tempDir } from '../util/temp-dir.js';
import { TINY_BERT_DIR } from './reference.js';

const tmp = tempDir('embed-backbone');

/** A copy of tiny-bert under tmp with `edit` applied. */
function variant(name: string, edit: (dir: string) => void): string {
  const dir = path.join(tmp, name);
  cpSync(TINY_BERT_DIR, dir, { recursive: true });
  edit(dir);
  return dir;
}

describe('resolveBackbone', () => {
  it('resolves a local directory with a content fingerprint that ignores its location', async () => {
    const a = await resolveBackbone(TINY_BERT_DIR);
    expect(a.source).toBe('local');
    expect(a.modelId).toBe('entk/tiny-bert');
    expect(a.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    const copy = variant('copy', () => undefined);
    const b = await resolveBackbone(copy);
    expect(b.revision).toBe(a.revision);
    const changed = variant('changed', (d) =>
      writeFileSync(path.join(d, 'tokenizer_config.json'), '{"model_max_length": 32}\n'),
    );
    expect((await resolveBackbone(changed)).revision).not.toBe(a.revision);
  });

  it('finds a hub id mirrored under modelsDir/<owner>/<name> without network', async () => {
    const modelsDir = path.join(tmp, 'models');
    mkdirSync(path.join(modelsDir, 'someone'), { recursive: true });
    cpSync(TINY_BERT_DIR, path.join(modelsDir, 'someone', 'tiny'), { recursive: true });
    const r = await resolveBackbone('someone/tiny', { modelsDir });
    expect(r.source).toBe('local');
    const e = await embedTexts(['hello world'], { backbone: 'someone/tiny', modelsDir, cacheDir: false });
    expect(e.shape).toEqual([1, 32]);
  });

  it('a hub id is returned as a hub backbone only when remote loading is allowed', async () => {
    const r = await resolveBackbone('Xenova/all-MiniLM-L6-v2', {
      allowRemote: true,
      modelsDir: tmp,
      revision: 'abc123',
    });
    expect(r).toMatchObject({ source: 'hub', modelId: 'Xenova/all-MiniLM-L6-v2', revision: 'abc123' });
  });

  it('a missing hub model (offline, the default) says exactly which files to download and where', async () => {
    const modelsDir = path.join(tmp, 'empty-models');
    const err = await resolveBackbone('Xenova/all-MiniLM-L6-v2', { modelsDir }).catch((e) => e);
    expect(err).toBeInstanceOf(BackboneNotFoundError);
    const msg = (err as Error).message;
    expect(msg).toContain('remote loading is off');
    expect(msg).toContain('config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx');
    expect(msg).toContain('https://huggingface.co/Xenova/all-MiniLM-L6-v2/tree/main');
    expect(msg).toContain(path.join(modelsDir, 'Xenova/all-MiniLM-L6-v2'));
    expect(msg).toContain('--allow-remote');
    // The quantised dtype names its own file.
    const q = await resolveBackbone('Xenova/all-MiniLM-L6-v2', { modelsDir, dtype: 'q8' }).catch((e) => e);
    expect((q as Error).message).toContain('onnx/model_quantized.onnx');
    // Through embedTexts, the same error.
    await expect(
      embedTexts(['x'], { backbone: 'Xenova/all-MiniLM-L6-v2', modelsDir }),
    ).rejects.toBeInstanceOf(BackboneNotFoundError);
  });

  it('a missing local directory names the path and the files it needs', async () => {
    const missing = path.join(tmp, 'no-such-model');
    await expect(resolveBackbone(missing)).rejects.toThrow(
      new RegExp(
        `directory ${missing} does not exist; expected a directory containing config.json, tokenizer.json`,
      ),
    );
    await expect(resolveBackbone('./not/here/either')).rejects.toBeInstanceOf(BackboneNotFoundError);
  });

  it('rejects bad arguments', async () => {
    await expect(resolveBackbone('')).rejects.toThrow(/backbone: expected a model directory or a hub id/);
    await expect(resolveBackbone(TINY_BERT_DIR, { dtype: 'fp64' as 'fp32' })).rejects.toThrow(
      /dtype: expected one of fp32/,
    );
  });

  it('lists the required files per task and dtype', () => {
    expect(requiredBackboneFiles('text')).toEqual([
      'config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'onnx/model.onnx',
    ]);
    expect(requiredBackboneFiles('image', 'fp16')).toEqual([
      'config.json',
      'preprocessor_config.json',
      'onnx/model_fp16.onnx',
    ]);
  });
});

describe('corrupt or incomplete model directories', () => {
  it('missing tokenizer.json', async () => {
    const dir = variant('no-tokenizer', (d) => rmSync(path.join(d, 'tokenizer.json')));
    const err = await embedTexts(['x'], { backbone: dir, cacheDir: false }).catch((e) => e);
    expect(err).toBeInstanceOf(BackboneNotFoundError);
    expect((err as Error).message).toMatch(new RegExp(`backbone directory ${dir} is missing tokenizer.json`));
  });

  it('missing onnx model for the requested dtype', async () => {
    await expect(resolveBackbone(TINY_BERT_DIR, { dtype: 'q8' })).rejects.toThrow(
      /is missing onnx\/model_quantized.onnx.*dtype q8 reads onnx\/model_quantized.onnx/,
    );
  });

  it('garbage onnx bytes', async () => {
    const dir = variant('garbage-onnx', (d) =>
      writeFileSync(path.join(d, 'onnx', 'model.onnx'), 'this is not a model'),
    );
    const err = await embedTexts(['x'], { backbone: dir, cacheDir: false }).catch((e) => e);
    expect(err).toBeInstanceOf(CorruptFileError);
    expect((err as Error).message).toBe(
      `${path.join(dir, 'onnx', 'model.onnx')}: is not an ONNX model; re-download it`,
    );
  });

  it('a Git LFS pointer instead of the onnx model', async () => {
    const dir = variant('lfs-onnx', (d) =>
      writeFileSync(
        path.join(d, 'onnx', 'model.onnx'),
        'version https://git-lfs.github.com/spec/v1\noid sha256:abc\n',
      ),
    );
    await expect(resolveBackbone(dir)).rejects.toThrow(/Git LFS pointer/);
  });

  it('an onnx file that looks like a protobuf but is truncated fails in onnxruntime with the file named', async () => {
    const dir = variant('truncated-onnx', (d) => {
      const file = path.join(d, 'onnx', 'model.onnx');
      const bytes = readFileSync(file);
      writeFileSync(file, bytes.subarray(0, 2000));
    });
    const err = await embedTexts(['x'], { backbone: dir, cacheDir: false }).catch((e) => e);
    expect(err).toBeInstanceOf(CorruptFileError);
    expect((err as Error).message).toContain(
      `${path.join(dir, 'onnx', 'model.onnx')}: onnxruntime could not load it`,
    );
  });

  it('unparsable config.json / tokenizer.json, config without model_type, empty onnx', async () => {
    const badConfig = variant('bad-config', (d) =>
      writeFileSync(path.join(d, 'config.json'), '{ "model_type": '),
    );
    await expect(resolveBackbone(badConfig)).rejects.toThrow(/config.json: not valid JSON/);
    const noType = variant('no-type', (d) => writeFileSync(path.join(d, 'config.json'), '{}'));
    await expect(resolveBackbone(noType)).rejects.toThrow(/has no "model_type"/);
    const badTok = variant('bad-tok', (d) =>
      writeFileSync(path.join(d, 'tokenizer.json'), '{"version": "1.0"}'),
    );
    await expect(resolveBackbone(badTok)).rejects.toThrow(/tokenizer.json: has no tokenizer "model" section/);
    const empty = variant('empty-onnx', (d) => writeFileSync(path.join(d, 'onnx', 'model.onnx'), ''));
    await expect(resolveBackbone(empty)).rejects.toThrow(/model.onnx: is empty/);
  });

  it('image extraction on a text-only model says it lacks an image processor', async () => {
    const image = { data: new Uint8Array(16 * 16 * 3), width: 16, height: 16, channels: 3 as const };
    await expect(embedImages([image], { backbone: TINY_BERT_DIR, cacheDir: false })).rejects.toThrow(
      /is missing preprocessor_config.json \(image feature extraction needs an image model/,
    );
  });
});
