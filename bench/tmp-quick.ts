import { quickBulk } from './bulk.ts'
import { killAll } from './lib/children.ts'
const t = performance.now()
try { await quickBulk(l => console.log(l)) } finally { killAll() }
console.log(((performance.now() - t) / 1000).toFixed(1), 's', (await import('node:os')).loadavg())
