import { describe, expect, it } from 'vitest';
import { expectOneLineError, runCli } from './run-cli.js';

describe('entk info', () => {
  it('prints backend, SIMD/threads and versions as JSON', async () => {
    const r = await runCli(['info', '--json']);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.backend).toBe('wasm');
    expect(info.simd).toBe(true);
    expect(info.threads).toBe(false);
    expect(info.versions.tfjs).toBe('4.22.0');
    expect(info.versions.node).toBe(process.versions.node);
    expect(info.versions.entk).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('prints a human summary', async () => {
    const r = await runCli(['info']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/backend\s+wasm/);
  });

  it('rejects an unknown backend with one line and a non-zero exit', async () => {
    const r = await runCli(['--backend', 'gpu', 'info']);
    expectOneLineError(r, /--backend: expected one of auto, tensorflow, wasm, cpu, received "gpu"/);
  });

  it('fails clearly, without falling back, when a requested backend cannot load', async () => {
    const r = await runCli(['info'], { ENTK_BACKEND: 'tensorflow' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/backend 'tensorflow' cannot be loaded/);
  });

  it('honours ENTK_BACKEND=cpu', async () => {
    const r = await runCli(['info', '--json'], { ENTK_BACKEND: 'cpu' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).backend).toBe('cpu');
  });

  it('rejects an unknown command', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unknown command/);
  });
});
