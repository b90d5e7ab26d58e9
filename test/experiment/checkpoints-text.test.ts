// The checkpoints study's sentence on refreshed kernels follows the numbers (refreshed vs frozen RMS).
import { describe, expect, it } from 'vitest';
import { refreshSentence } from '../../src/experiment/studies/checkpoints.js';

describe('refreshSentence', () => {
  it('refreshed RMS below POP-MU: closes that share of the gap', () => {
    const s = refreshSentence(0.2, 0.05, true);
    expect(s).toContain('closes 75% of the gap between POP-MU and the network');
    expect(s).toContain('{refreshedRmse} nats against {popMuRmse} nats with K frozen');
  });

  it('refreshed RMS not below POP-MU: says it does not close the gap', () => {
    for (const refreshed of [0.2, 0.3]) {
      const s = refreshSentence(0.2, refreshed, true);
      expect(s).toContain('does not close the gap between POP-MU and the network');
      expect(s).not.toContain('closes');
    }
  });

  it('no refreshed kernel at this checkpoint, or none at all', () => {
    expect(refreshSentence(0.2, undefined, true)).toBe(
      'The kernel was not refreshed along the run from this checkpoint.',
    );
    expect(refreshSentence(0.2, undefined, false)).toMatch(/^Set finetune\.refreshEvery/);
  });
});
