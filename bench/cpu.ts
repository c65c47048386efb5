// `node bench/cpu.ts [--requests N] [--only ours,ours-off,ours-warn,apollo,yoga,held,azure,azure-nothumbs,azure-off]
// [--no-profile]`: CPU per identification of each
// server (its threads' CPU time over N requests at 32 connections, after a warm-up), and where ours spends the
// main thread's share (a second run under --cpu-prof). Independent of what else runs on the machine.
// run.ts uses measureCpu for its per-request table; this file run on its own prints that table.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { benchImage, CACHE_DIR, type BenchImage } from './lib/images.ts'
import { killAll, startFakeAzure, startLoad, startServer, stop, type FakeChild, type LoadChild } from './lib/children.ts'
import { childrenCpu, STEPS, stepShares, threadCpu, type Step } from './lib/cpu.ts'
import type { LoadResult } from './lib/protocol.ts'

/**
 * Every server with `npm start`'s simulated backend; ours' event-loop-delay pressure check off (on a machine other
 * processes share, a delay past 1 s would refuse some requests and mix refusals into the cost of an answer).
 */
export const CPU_ENV = { BENCH_VISION: 'simulated', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0' }

export interface CpuTarget { key: string, script: string, env?: Record<string, string> }
export interface CpuResult {
  key: string
  requests: number
  /** Microseconds of CPU per request: main thread, other threads. */
  mainUs: number
  othersUs: number
  /** Microseconds of CPU per request in the server's child processes (the thumbnail process, at nice 19). */
  childUs: number
  /** The main thread's µs per step (from the profile), when profiled. */
  steps: Map<Step, number> | null
  failures: number
}

function bad (r: LoadResult): number {
  return r.non2xx + r.errors + r.timeouts + r.mismatches
}

export async function measureCpu (
  load: LoadChild, image: BenchImage, target: CpuTarget,
  { requests, profile, answer }: { requests: number, profile: boolean, answer: string }
): Promise<CpuResult> {
  const job = (url: string, amount: number) => ({
    url, file: image.path, connections: 32, timeout: 30, expectSha256: image.sha256, expectAnswerPrefix: answer, amount
  })
  const run = async (execArgv: string[]): Promise<{ main: number, others: number, child: number, r: LoadResult }> => {
    const server = await startServer(`${target.key}-cpu`, target.script, { env: target.env, execArgv })
    try {
      const url = `http://127.0.0.1:${server.port}/graphql`
      // Warm-up: JIT, pools, caches. As many requests as are measured (at least 2,000): after a quarter as many, V8
      // was still optimising in the measured window (158 compilations in 3,000 requests), ±10–15 % run to run.
      await load.run(job(url, Math.max(2000, requests)), 300_000)
      const before = threadCpu(server.pid)
      const childBefore = childrenCpu(server.pid)
      const r = await load.run(job(url, requests), 300_000)
      const after = threadCpu(server.pid)
      const childAfter = childrenCpu(server.pid) // a child that started during the run counts from 0
      return { main: after.main - before.main, others: after.others - before.others, child: childAfter - childBefore, r }
    } finally {
      await stop(server)
    }
  }
  const plain = await run([])
  let steps: Map<Step, number> | null = null
  const mainUs = plain.main / plain.r.requests * 1e6
  if (profile) {
    const dir = join(CACHE_DIR, 'profiles', `${target.key}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
    mkdirSync(dir, { recursive: true })
    await run(['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200'])
    const file = readdirSync(dir).find(f => f.endsWith('.cpuprofile'))
    if (file) {
      const shares = stepShares(join(dir, file))
      steps = new Map(STEPS.map(s => [s, (shares.get(s) ?? 0) * mainUs]))
    }
  }
  const othersUs = plain.others / plain.r.requests * 1e6
  const childUs = plain.child / plain.r.requests * 1e6
  return { key: target.key, requests: plain.r.requests, mainUs, othersUs, childUs, steps, failures: bad(plain.r) }
}

export function cpuTable (results: CpuResult[]): string {
  const us = (n: number): string => n.toFixed(0)
  const lines = [
    `| step (µs of CPU per request) | ${results.map(r => r.key).join(' | ')} |`,
    `|---|${results.map(() => '---:').join('|')}|`
  ]
  if (results.some(r => r.steps)) {
    for (const step of STEPS) lines.push(`| ${step} | ${results.map(r => r.steps ? us(r.steps.get(step) ?? 0) : '').join(' | ')} |`)
  }
  lines.push(`| **main thread** | ${results.map(r => `**${us(r.mainUs)}**`).join(' | ')} |`)
  lines.push(`| other threads (SQLite writer, libuv pool, GC helpers) | ${results.map(r => us(r.othersUs)).join(' | ')} |`)
  lines.push(`| **whole process** | ${results.map(r => `**${us(r.mainUs + r.othersUs)}**`).join(' | ')} |`)
  lines.push(`| thumbnail process (nice 19: only CPU the server leaves idle) | ${results.map(r => us(r.childUs)).join(' | ')} |`)
  lines.push(`| requests measured (failures) | ${results.map(r => `${r.requests} (${r.failures})`).join(' | ')} |`)
  return lines.join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '4000' },
      only: { type: 'string', default: 'ours,ours-off' },
      'no-profile': { type: 'boolean', default: false }
    }
  })
  const dataDir = mkdtempSync(join(tmpdir(), 'agrivision-bench-cpu-'))
  const base = { ...CPU_ENV }
  const all: CpuTarget[] = [
    { key: 'ours', script: 'peers/ours.ts', env: { ...base, BENCH_DATA_DIR: dataDir } },
    { key: 'ours-off', script: 'peers/ours.ts', env: { ...base, HISTORY: 'off' } },
    { key: 'ours-warn', script: 'peers/ours.ts', env: { ...base, BENCH_DATA_DIR: dataDir, BENCH_LOG_LEVEL: 'warn' } },
    { key: 'apollo', script: 'peers/apollo.ts', env: base },
    { key: 'yoga', script: 'peers/yoga.ts', env: base },
    // Scenario 2's control: the same 200 ms wait and rate as `azure`, without the Azure client (what the client adds).
    { key: 'held', script: 'peers/ours.ts', env: { ...base, BENCH_VISION: 'bench', BENCH_LATENCY_MS: '200', VISION_MAX_CONCURRENCY: '64', BENCH_DATA_DIR: dataDir } }
  ]
  const only = new Set(values.only.split(','))
  const image = await benchImage('photo')
  const load = await startLoad()
  const results: CpuResult[] = []
  let fake: FakeChild | undefined
  try {
    // The real Azure backend against the fake answering after 200 ms (scenario 2's setup), thumbnails as by default or skipped.
    if ([...only].some(k => k.startsWith('azure'))) {
      fake = await startFakeAzure(200)
      const azure = { ...fake.env, VISION_MAX_CONCURRENCY: '64', BENCH_VISION: 'azure', AZURE_OPENAI_ENDPOINT: fake.origin, AZURE_OPENAI_DEPLOYMENT: 'gpt-4o-vision' }
      all.push({ key: 'azure', script: 'peers/ours.ts', env: { ...azure, BENCH_DATA_DIR: dataDir } })
      all.push({ key: 'azure-nothumbs', script: 'peers/ours.ts', env: { ...azure, BENCH_DATA_DIR: dataDir, THUMBNAIL_SKIP_ABOVE_UTILISATION: '0' } })
      all.push({ key: 'azure-off', script: 'peers/ours.ts', env: { ...azure, HISTORY: 'off' } })
    }
    for (const target of all.filter(t => only.has(t.key))) {
      const profile = !values['no-profile'] && (target.key.startsWith('ours') || target.key.startsWith('azure'))
      const answer = target.key.startsWith('azure') ? 'A green tractor' : '[SIMULATED]'
      const r = await measureCpu(load, image, target, { requests: Number(values.requests), profile, answer })
      process.stdout.write(`${r.key}: main ${r.mainUs.toFixed(0)} µs, others ${r.othersUs.toFixed(0)} µs, child ${r.childUs.toFixed(0)} µs per request (${r.requests} requests, ${r.failures} failures)\n`)
      results.push(r)
    }
  } finally {
    if (fake) await stop(fake)
    await stop(load)
    killAll()
    rmSync(dataDir, { recursive: true, force: true })
  }
  process.stdout.write(`\n${cpuTable(results)}\n`)
}
