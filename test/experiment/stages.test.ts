import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalJson, hashOf, type StageEvent, StageRunner } from '../../src/experiment/index.js';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-stages-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

describe('canonicalJson / hashOf', () => {
  it('ignores key order and distinguishes values', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 2], c: null } })).toBe('{"a":{"c":null,"d":[1,2]},"b":1}');
    expect(hashOf({ a: 1, b: 2 })).toBe(hashOf({ b: 2, a: 1 }));
    expect(hashOf({ a: 1 })).not.toBe(hashOf({ a: 2 }));
    expect(hashOf([1, 2])).not.toBe(hashOf([2, 1]));
    expect(hashOf({ a: 1 })).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('StageRunner', () => {
  it('runs a stage once, reuses it while its inputs are unchanged, redoes it when they change', async () => {
    const dir = await tmp();
    let calls = 0;
    const work = async () => {
      calls++;
      return { value: calls };
    };
    const a = await StageRunner.open(dir);
    const first = await a.run('s', { x: 1 }, work);
    expect(first).toMatchObject({ cached: false, result: { value: 1 } });
    const again = await a.run('s', { x: 1 }, work);
    expect(again).toMatchObject({ cached: true, result: { value: 1 }, key: first.key });
    // A new session reads stages.json.
    const events: StageEvent[] = [];
    const b = await StageRunner.open(dir, (e) => events.push(e));
    expect(await b.run('s', { x: 1 }, work)).toMatchObject({ cached: true, result: { value: 1 } });
    expect(calls).toBe(1);
    const changed = await b.run('s', { x: 2 }, work);
    expect(changed).toMatchObject({ cached: false, result: { value: 2 } });
    expect(changed.key).not.toBe(first.key);
    expect(calls).toBe(2);
    expect(events.map((e) => `${e.status} ${e.stage}`)).toEqual(['cached s', 'started s', 'done s']);
    expect(b.events.map((e) => e.status)).toEqual(['cached', 'done']);
    expect(b.recorded()).toEqual(['s']);
  });

  it('a downstream stage that includes the upstream key is redone when the upstream changes', async () => {
    const dir = await tmp();
    const runner = await StageRunner.open(dir);
    const up1 = await runner.run('up', { p: 1 }, async () => 1);
    const down1 = await runner.run('down', { up: up1.key }, async () => up1.result * 10);
    const up2 = await runner.run('up', { p: 2 }, async () => 2);
    const down2 = await runner.run('down', { up: up2.key }, async () => up2.result * 10);
    expect(down1.result).toBe(10);
    expect(down2).toMatchObject({ cached: false, result: 20 });
  });

  it('redoes a cached stage whose output files have disappeared', async () => {
    const dir = await tmp();
    const file = path.join(dir, 'out.txt');
    let calls = 0;
    const stage = async () => {
      calls++;
      await fs.writeFile(file, 'x');
      return { file };
    };
    const runner = await StageRunner.open(dir);
    await runner.run('w', {}, stage, { outputs: (r) => [r.file] });
    expect((await runner.run('w', {}, stage, { outputs: (r) => [r.file] })).cached).toBe(true);
    await fs.rm(file);
    expect((await runner.run('w', {}, stage, { outputs: (r) => [r.file] })).cached).toBe(false);
    expect(calls).toBe(2);
  });

  it('does not record a stage that throws', async () => {
    const dir = await tmp();
    const runner = await StageRunner.open(dir);
    await expect(runner.run('bad', {}, async () => Promise.reject(new Error('boom')))).rejects.toThrow(
      'boom',
    );
    expect(runner.recorded()).toEqual([]);
    let ran = false;
    await runner.run('bad', {}, async () => {
      ran = true;
    });
    expect(ran).toBe(true);
  });
});

describe('StageRunner.open', () => {
  it('names a damaged stages.json', async () => {
    const dir = await tmp();
    await fs.writeFile(path.join(dir, 'stages.json'), '{"s": {"key": ');
    await expect(StageRunner.open(dir)).rejects.toThrow(/stages\.json: not valid JSON/);
    await fs.writeFile(path.join(dir, 'stages.json'), '[1, 2]');
    await expect(StageRunner.open(dir)).rejects.toThrow(/stages\.json: expected an object of stage records/);
  });
});
