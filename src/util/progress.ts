/**
 * A minimal progress bar on stderr: drawn only on an interactive terminal outside CI, silent
 * otherwise (pipes, CI=true, --quiet, --json). Long-running work reports through this interface.
 */

export interface Progress {
  /** Advance by `n` units (default 1), optionally updating the trailing status text. */
  tick(n?: number, status?: string): void;
  /** Finish and clear the line. */
  done(): void;
}

const silent: Progress = { tick: () => undefined, done: () => undefined };

let quietOverride = false;
/** Silence all progress output process-wide (the CLI's --quiet / --json). */
export function setProgressQuiet(quiet: boolean): void {
  quietOverride = quiet;
}

function enabled(): boolean {
  return !quietOverride && Boolean(process.stderr.isTTY) && !process.env.CI && !process.env.VITEST;
}

/** A progress bar over `total` units labelled `label`. */
export function progressBar(label: string, total: number): Progress {
  if (!enabled() || total <= 0) return silent;
  const start = Date.now();
  let done = 0;
  let lastDraw = 0;
  let status = '';
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    const width = 28;
    const fraction = Math.min(1, done / total);
    const filled = Math.round(fraction * width);
    const elapsed = (now - start) / 1000;
    const eta = fraction > 0 ? elapsed * (1 / fraction - 1) : 0;
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const text = `${label} ${bar} ${done}/${total} ${elapsed.toFixed(1)}s eta ${eta.toFixed(1)}s ${status}`;
    process.stderr.write(`\r${text.slice(0, (process.stderr.columns ?? 100) - 1)}\x1b[K`);
  };
  return {
    tick(n = 1, s?: string) {
      done += n;
      if (s !== undefined) status = s;
      draw(done >= total);
    },
    done() {
      process.stderr.write('\r\x1b[K');
    },
  };
}
