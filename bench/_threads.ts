import { readdirSync, readFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchImage } from './lib/images.ts'
import { killAll, startFakeAzure, startLoad, startServer, stop } from './lib/children.ts'
import { CPU_ENV } from './cpu.ts'
const TICK = 100
function threads (pid: number): Map<string, number> {
  const m = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const key = Number(tid) === pid ? 'MAIN' : comm
      m.set(key, (m.get(key) ?? 0) + (Number(f[11]) + Number(f[12])) / TICK)
    } catch {}
  }
  return m
}
const image = await benchImage('photo')
const load = await startLoad()
const fake = await startFakeAzure(200)
const dataDir = mkdtempSync(join(tmpdir(), 'thr-'))
const extra = JSON.parse(process.argv[2] ?? '{}')
const env = { ...CPU_ENV, ...fake.env, VISION_MAX_CONCURRENCY: '64', BENCH_VISION: 'azure', AZURE_OPENAI_ENDPOINT: fake.origin, AZURE_OPENAI_DEPLOYMENT: 'gpt-4o-vision', BENCH_DATA_DIR: dataDir, ...extra }
const execArgv = JSON.parse(process.argv[3] ?? '[]')
const server = await startServer('thr', 'peers/ours.ts', { env, execArgv })
let gcLines: string[] = []
let counting = false
server.proc.stdout?.on('data', (c: Buffer) => { if (counting) for (const l of c.toString().split('\n')) if (l.includes('ms: ') || l.includes('IncrementalMarking')) gcLines.push(l) })
const url = `http://127.0.0.1:${server.port}/graphql`
const job = (amount: number) => ({ url, file: image.path, connections: 32, timeout: 30, expectSha256: image.sha256, expectAnswerPrefix: 'A green tractor', amount })
await load.run(job(800), 120000)
const a = threads(server.pid); counting = true
const N = 3000
const r = await load.run(job(N), 300000)
const b = threads(server.pid); counting = false
for (const [k, v] of b) { const d = v - (a.get(k) ?? 0); if (d > 0) console.log(k.padEnd(20), (d / N * 1e6).toFixed(0), 'µs/req') }
const kinds = new Map<string, number>()
for (const l of gcLines) { const m = /ms: ([A-Za-z-]+)[^(]*(\([^)]*\))?/.exec(l); const k = m ? m[1] + ' ' + (l.match(/(reduce memory|finalize incremental marking[^,]*|task|allocation failure|idle task|testing|external memory pressure|low memory|GC in old space requested)/)?.[0] ?? '') : l.slice(0, 60); kinds.set(k, (kinds.get(k) ?? 0) + 1) }
const starts: Record<string, number> = {}
for (const l of gcLines) { const m = /Start \(([^)]*)\)/.exec(l); if (m) starts[m[1] as string] = (starts[m[1] as string] ?? 0) + 1 }
console.log('mark-compacts', gcLines.filter(l => / Mark-Compact /.test(l)).length, 'scavenges', gcLines.filter(l => / Scavenge /.test(l)).length, 'starts', JSON.stringify(starts))
console.log('rps', r.rps, 'p50', r.p50, 'p99', r.p99)
await stop(server); await stop(fake); await stop(load); killAll()
