import { writeReport } from '../../src/report/index.js';
import { sampleReport } from './fixtures.js';
const t0 = Date.now();
const report = await sampleReport();
console.log('figures', Date.now() - t0);
const w = await writeReport('/tmp/rp/out', report);
console.log('written', Date.now() - t0, w.html);
