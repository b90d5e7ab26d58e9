import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptFileError } from '../../src/errors.js';
import { resolveInside } from '../../src/util/fs.js';

describe('resolveInside', () => {
  const dir = path.join('runs', 'x');
  const source = path.join(dir, 'manifest.json');

  it('joins a plain file name (and, when allowed, a relative path that stays inside)', () => {
    expect(resolveInside(dir, 'kernel.npy', 'file', source)).toBe(path.join(dir, 'kernel.npy'));
    expect(resolveInside(dir, 'kernels/a.npy', 'file', source, { basename: false })).toBe(
      path.join(dir, 'kernels', 'a.npy'),
    );
  });

  it.each([
    ['../victim', /has a '\.\.' segment/],
    ['a/../../b', /has a '\.\.' segment/],
    ['..\\b', /has a '\.\.' segment/],
    ['/etc/passwd', /is an absolute path/],
    ['C:\\x', /is an absolute path/],
    ['a\0b', /contains a NUL byte/],
    ['', /is not a file name/],
    ['kernels/a.npy', /is not a plain file name/],
    ['.', /is not a plain file name/],
  ])('refuses %j with a CorruptFileError naming the source file', (name, why) => {
    const error = (() => {
      try {
        resolveInside(dir, name, 'arrays.kernel.file', source);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error).toBeInstanceOf(CorruptFileError);
    expect(error!.message.startsWith(`${source}: arrays.kernel.file `)).toBe(true);
    expect(error!.message).toMatch(why);
  });

  it('refuses non-strings and the directory itself even when subpaths are allowed', () => {
    expect(() => resolveInside(dir, 42, 'file', source)).toThrow(/42 is not a file name/);
    expect(() => resolveInside(dir, './', 'file', source, { basename: false })).toThrow(
      /leaves the directory/,
    );
  });
});
