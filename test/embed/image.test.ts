import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTransformers } from '../../src/embed/extractor.js';
import { embedImages } from '../../src/embed/index.js';
import { tempDir } from '../util/temp-dir.js';
import { poolRows, TINY_VIT_DIR, tinyVitForward } from './reference.js';

const tmp = tempDir('embed-image');

/** A deterministic 16×16 RGB test pattern. */
function pattern(seed: number): Uint8Array {
  const data = new Uint8Array(16 * 16 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101 + ((i * i) % 13)) % 256;
  return data;
}

const IMAGES = [0, 1, 2].map((s) => ({ data: pattern(s), width: 16, height: 16, channels: 3 as const }));

describe('embedImages on models/tiny-vit (real pipeline)', () => {
  it('cls and mean pooling (± normalisation) match the float64 reference (|Δ| < 1e-5)', async () => {
    for (const pooling of ['cls', 'mean'] as const) {
      for (const normalize of [false, true]) {
        const e = await embedImages(IMAGES, { backbone: TINY_VIT_DIR, pooling, normalize, cacheDir: false });
        expect(e.shape).toEqual([3, 16]);
        for (let b = 0; b < IMAGES.length; b++) {
          const rows = tinyVitForward(IMAGES[b]!.data);
          const ref = poolRows(
            rows,
            rows.map(() => 1),
            pooling,
            normalize,
          );
          for (let j = 0; j < 16; j++) expect(Math.abs(e.data[b * 16 + j]! - ref[j]!)).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('a PNG file path gives the same features as its raw pixels; cache miss then hit', async () => {
    const { RawImage } = await loadTransformers();
    const file = path.join(tmp, 'pattern.png');
    await new RawImage(new Uint8ClampedArray(IMAGES[1]!.data), 16, 16, 3).save(file);
    const cacheDir = path.join(tmp, 'cache');
    const fromFile = await embedImages([file], { backbone: TINY_VIT_DIR, cacheDir });
    expect(fromFile.cache).toBe('miss');
    const fromRaw = await embedImages([IMAGES[1]!], { backbone: TINY_VIT_DIR, cacheDir: false });
    for (let j = 0; j < 16; j++) expect(fromFile.data[j]).toBe(fromRaw.data[j]);
    const again = await embedImages([file], { backbone: TINY_VIT_DIR, cacheDir });
    expect(again.cache).toBe('hit');
    expect(Array.from(again.data)).toEqual(Array.from(fromFile.data));
  });

  it('rejects malformed images and unreadable files', async () => {
    await expect(
      embedImages([{ data: new Uint8Array(10), width: 16, height: 16, channels: 3 }], {
        backbone: TINY_VIT_DIR,
      }),
    ).rejects.toThrow(/images\[0\]: expected a file path or/);
    await expect(embedImages([path.join(tmp, 'missing.png')], { backbone: TINY_VIT_DIR })).rejects.toThrow(
      /missing.png: cannot read image file \(ENOENT\)/,
    );
    await expect(embedImages([], { backbone: TINY_VIT_DIR })).rejects.toThrow(
      /images: expected a non-empty array/,
    );
  });
});
