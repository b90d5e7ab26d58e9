// Data limits (issue 12): files read as streams (peak memory a small multiple of the numeric data),
// chunk boundaries invisible in the result, and input that used to be silently ignored or
// reinterpreted now refused with the file, line and column or the option named.
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseCsvRecords } from '../../src/data/csv.js';
import { type LoadOptions, loadDataFile, loadDataset } from '../../src/data/index.js';
import { DataFormatError, InvalidArgumentError } from '../../src/errors.js';
import { runProcess } from '../util/process.js';
import { tempDir } from '../util/temp-dir.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = tempDir('data-limits');
let counter = 0;
function write(name: string, content: string | Buffer): string {
  const sub = path.join(dir, String(counter++));
  mkdirSync(sub, { recursive: true });
  const p = path.join(sub, name);
  writeFileSync(p, content);
  return p;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => null,
    (error: unknown) => error,
  );
  expect(e, 'expected a rejection').toBeInstanceOf(Error);
  return e as Error;
}

async function expectDataError(
  file: string,
  line: number,
  column: string,
  message: RegExp,
  options?: LoadOptions,
) {
  const e = (await rejection(loadDataFile(file, options))) as DataFormatError;
  expect(e).toBeInstanceOf(DataFormatError);
  expect(e.file).toBe(file);
  expect(e.line).toBe(line);
  expect(e.column).toBe(column);
  expect(e.message).toMatch(message);
}

describe('streaming reader', () => {
  it('loads a ~57 MB CSV with peak RSS growth below 4× its float32 data + 48 MB (the whole-text reader needed ~22×)', async () => {
    // 200000 rows × 30 features of "%.6f" text: 57 MB of CSV, 22.9 MB of float32 features.
    const n = 200_000;
    const d = 30;
    const file = path.join(dir, 'big.csv');
    const out = createWriteStream(file);
    out.write(`${Array.from({ length: d }, (_, j) => `f${j}`).join(',')},label\n`);
    let sum = 0; // float64 sum of the float32-rounded values: the reference checksum
    for (let i = 0; i < n; i++) {
      const cells: string[] = [];
      for (let j = 0; j < d; j++) {
        const text = (((i * 7919 + j * 104729) % 2_000_001) / 1_000_000 - 1).toFixed(6);
        sum += Math.fround(Number(text));
        cells.push(text);
      }
      const row = `${cells.join(',')},${i % 10}\n`;
      if (!out.write(row)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve, reject) =>
      out.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
    // A fresh process: its maxRSS growth across the load is the loader's peak memory.
    const script = path.join(dir, 'measure.mjs');
    writeFileSync(
      script,
      `const { loadDataFile } = await import(${JSON.stringify(path.join(repo, 'src/data/files.ts'))});
const before = process.resourceUsage().maxRSS * 1024;
const ds = await loadDataFile(${JSON.stringify(file)});
const growth = process.resourceUsage().maxRSS * 1024 - before;
let sum = 0;
for (let k = 0; k < ds.x.length; k++) sum += ds.x[k];
console.log(JSON.stringify({ growth, n: ds.y.length, d: ds.inputShape[0], sum, y7: ds.y[7], classes: ds.classNames.length }));`,
    );
    const r = await runProcess(process.execPath, ['--import', 'tsx', script], { cwd: repo });
    expect(r.stderr).toBe('');
    const m = JSON.parse(r.stdout);
    expect(m).toMatchObject({ n, d, y7: 7, classes: 10 });
    expect(Math.abs(m.sum - sum)).toBeLessThan(1e-6 * n * d);
    const dataBytes = n * d * 4;
    console.log(
      `CSV load: peak RSS growth ${(m.growth / 2 ** 20).toFixed(1)} MiB for ${(dataBytes / 2 ** 20).toFixed(1)} MiB of float32`,
    );
    expect(m.growth).toBeLessThan(4 * dataBytes + 48 * 2 ** 20);
  }, 600_000);

  it('CSV: quoted multi-line fields across chunk boundaries keep their text and the line numbers', async () => {
    // > 256 KiB so that the stream arrives in several chunks; every 3rd text spans two lines.
    let text = 'id,x,text,label\n';
    const expected: string[] = [];
    for (let i = 0; i < 6000; i++) {
      const t =
        i % 3 === 0 ? `first "line" ${i}\nsecond line ${'z'.repeat(40)}` : `plain ${i} ${'y'.repeat(40)}`;
      expected.push(t);
      text += `r${i},${i / 4},"${t.replace(/"/g, '""')}",${i % 2}\r\n`;
    }
    const good = write('multiline.csv', text);
    const ds = await loadDataFile(good, { textColumn: 'text' });
    expect(ds.text).toEqual(expected);
    expect(ds.ids[5999]).toBe('r5999');
    expect(Array.from(ds.x.subarray(0, 3))).toEqual([0, 0.25, 0.5]);
    // A bad value after all that: the line number is the one the whole-text parser gives.
    const bad = `${text}r6000,oops,"a",1\n`;
    const records = parseCsvRecords(bad, 'ref');
    const line = records[records.length - 1]!.line;
    expect(line).toBe(1 + 6000 + 2000 + 1);
    await expectDataError(write('bad.csv', bad), line, '2 ("x")', /expected a number, found "oops"/, {
      textColumn: 'text',
    });
    // The same through gzip.
    await expectDataError(write('bad.csv.gz', gzipSync(bad)), line, '2 ("x")', /expected a number/, {
      textColumn: 'text',
    });
  });

  it('JSONL: long files in chunks, with CRLF line ends', async () => {
    const lines = Array.from({ length: 5000 }, (_, i) =>
      JSON.stringify({ a: i, b: [i, -i], label: `c${i % 3}` }),
    );
    const ds = await loadDataFile(write('long.jsonl.gz', gzipSync(`${lines.join('\r\n')}\r\n`)));
    expect(ds.featureNames).toEqual(['a', 'b[0]', 'b[1]']);
    expect(Array.from(ds.x.subarray(3 * 4999))).toEqual([4999, 4999, -4999]);
    expect(ds.classNames).toEqual(['c0', 'c1', 'c2']);
  });
});

describe('input no longer silently ignored or reinterpreted', () => {
  it('JSONL: null or a string number in line 1 of a numeric column is an error naming line and column', async () => {
    const nullFirst = write('n.jsonl', '{"a":1,"b":null,"label":0}\n{"a":2,"b":3,"label":1}\n');
    await expectDataError(nullFirst, 1, '"b"', /found null/);
    const stringFirst = write('s.jsonl', '{"a":1,"b":"2","label":0}\n{"a":2,"b":3,"label":1}\n');
    await expectDataError(stringFirst, 1, '"b"', /expected a number, found "2"/);
    // A column of names throughout is still not a feature.
    const ds = await loadDataFile(
      write('ok.jsonl', '{"a":1,"who":"x","label":0}\n{"a":2,"who":"y","label":1}\n'),
    );
    expect(ds.featureNames).toEqual(['a']);
  });

  it('numeric labels must be class indices: -1 and 1.5 are refused unless classNames are given', async () => {
    await expectDataError(
      write('neg.csv', 'x,label\n1,0\n2,1\n3,-1\n'),
      4,
      '2 ("label")',
      /label -1 is not a class index/,
    );
    await expectDataError(
      write('frac.csv', 'x,label\n1,1.5\n2,0\n'),
      2,
      '2 ("label")',
      /label 1.5 is not a class index/,
    );
    await expectDataError(
      write('neg.jsonl', '{"x":1,"label":"-1"}\n'),
      1,
      '"label"',
      /label -1 is not a class index/,
    );
    const named = await loadDataFile(write('named.csv', 'x,label\n1,-1\n2,1\n'), { classNames: ['1', '-1'] });
    expect(Array.from(named.y)).toEqual([1, 0]);
  });

  it('ids containing a comma are refused (ids: point specs are comma-separated)', async () => {
    await expectDataError(
      write('ids.csv', 'id,x,label\na,1,0\n"b,c",2,1\n'),
      3,
      '1 ("id")',
      /contains a comma/,
    );
  });

  it('column options for a built-in or synthetic dataset name the option and its flag', async () => {
    for (const [options, flag] of [
      [{ classNames: ['a', 'b', 'c'] }, '--class-names'],
      [{ labelColumn: 'species' }, '--label-column'],
      [{ featureColumns: ['x'] }, '--feature-columns'],
      [{ idColumn: 'id' }, '--id-column'],
    ] as [LoadOptions, string][]) {
      const e = await rejection(loadDataset('iris', options));
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e.message).toContain(flag);
      expect(e.message).toMatch(/built-in dataset iris/);
    }
    const e = await rejection(loadDataset('synthetic', { labelColumn: 'y' }));
    expect(e.message).toMatch(/labelColumn \(--label-column\).*synthetic/);
  });

  it('synthetic parameters are checked against limits before anything is generated', async () => {
    const t = performance.now();
    const e = await rejection(loadDataset('synthetic:classes=100000'));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toMatch(
      /numClasses: expected an integer ≥ 2 and ≤ 1000 \(synthetic classes=\), received 100000/,
    );
    await expect(loadDataset('synthetic:classes=10,per-class=200000')).rejects.toThrow(
      /at most 1000000 examples/,
    );
    await expect(loadDataset('synthetic:classes=2,dim=100000,per-class=2000')).rejects.toThrow(
      /at most 268435456 feature values \(1.07 GB as float32\)/,
    );
    await expect(loadDataset('synthetic:classes=1000,dim=20000,per-class=1')).rejects.toThrow(
      /numClasses²\*dim/,
    );
    expect(performance.now() - t).toBeLessThan(5000);
    // At the limit it still works.
    const ds = await loadDataset('synthetic:classes=1000,dim=2,per-class=1');
    expect(ds.classNames).toHaveLength(1000);
  });
});
