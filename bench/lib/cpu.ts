// Per-request CPU of a server child: its threads' CPU time (/proc/<pid>/task/*/stat) over a fixed number of
// requests, split into the main thread and the others (SQLite writer, libuv pool, V8's GC helpers); and, from a
// separate run under `--cpu-prof`, the main thread's time attributed to the steps of one identification.
// CPU time, not wall time: it holds on a machine other processes share (they slow the run, not its cost).
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const CLOCK_TICKS = 100 // USER_HZ on Linux

export interface ThreadCpu { main: number, others: number }

/** The process's CPU time in seconds: its main thread, and all its other threads together. */
export function threadCpu (pid: number): ThreadCpu {
  let main = 0
  let others = 0
  let tids: string[] = []
  try { tids = readdirSync(`/proc/${pid}/task`) } catch { return { main, others } }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const sec = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
      if (Number(tid) === pid) main += sec
      else others += sec
    } catch {} // a thread that ended meanwhile
  }
  return { main, others }
}

/** CPU seconds of a process's child processes (ours: the thumbnail process, at nice 19), all their threads. */
export function childrenCpu (pid: number): number {
  let total = 0
  let pids: string[] = []
  try { pids = readdirSync('/proc').filter(name => /^[0-9]+$/.test(name)) } catch { return 0 }
  for (const candidate of pids) {
    try {
      const stat = readFileSync(`/proc/${candidate}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) !== pid) continue // field 4: the parent
      const cpu = threadCpu(Number(candidate))
      total += cpu.main + cpu.others
    } catch {} // a process that ended meanwhile
  }
  return total
}

// ---------------------------------------------------------------- attribution of a profile to steps

interface CallFrame { functionName: string, url: string }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/**
 * The steps, in the order a request meets them. Each rule names the step a stack frame belongs to; a sample goes to
 * the innermost frame with a specific step (so sha256 inside inspectImage counts as the hash), else to the innermost
 * frame with a generic one (HTTP, Fastify, GraphQL execution, the flow's own code), else to "other".
 */
export const STEPS = [
  'HTTP parse + socket I/O',
  'Fastify routing, hooks, reply',
  'auth, rate limit, admission',
  'multipart parse (our buffered read and split; busboy)',
  'GraphQL (mercurius, graphql-jit, resolvers)',
  'file-type sniff',
  'sha256',
  'inspect (image-size, structure walk)',
  'image pipeline decision',
  'vision backend (simulated: answer, base64)',
  'identification flow + events',
  'history record (recorder, writer post)',
  'idempotency + result cache',
  'thumbnails (decision, queue)',
  'subscriptions + webhooks',
  'logging (pino)',
  'metrics (prom-client)',
  'garbage collection',
  'other (V8, builtins, unattributed)'
] as const
export type Step = typeof STEPS[number]

type Rule = [test: (where: string, fn: string) => boolean, step: Step]
const has = (...parts: string[]) => (where: string): boolean => parts.some(p => where.includes(p))

const SPECIFIC: Rule[] = [
  [(w, f) => w === 'node:internal/crypto/hash' && (f === 'update' || f === 'digest'), 'sha256'],
  [has('node_modules/file-type/', 'node_modules/strtok3/', 'node_modules/token-types/', 'node_modules/peek-readable/', 'node_modules/uint8array-extras/'), 'file-type sniff'],
  [has('node_modules/image-size/', 'src/image/inspect.ts', 'src/image/structure.ts'), 'inspect (image-size, structure walk)'],
  [has('src/image/pipeline.ts', 'src/image/decode-cost.ts', 'src/image/tokens.ts', 'node_modules/sharp/'), 'image pipeline decision'],
  [has('node_modules/busboy/', 'node_modules/streamsearch/', 'node_modules/@fastify/busboy/', 'node_modules/@fastify/multipart/',
    'node_modules/@remix-run/', 'src/graphql/upload.ts', 'src/graphql/buffered-multipart.ts'), 'multipart parse (our buffered read and split; busboy)'],
  [has('src/vision/', 'bench/peers/shared.ts'), 'vision backend (simulated: answer, base64)'],
  [has('src/history/idempotency.ts', 'src/history/idempotency-header.ts', 'src/history/result-cache.ts'), 'idempotency + result cache'],
  [has('src/history/', 'node_modules/kysely/'), 'history record (recorder, writer post)'],
  [has('src/thumbnails/'), 'thumbnails (decision, queue)'],
  [has('src/subscriptions/', 'src/webhooks/', 'node_modules/mqemitter'), 'subscriptions + webhooks'],
  [has('node_modules/pino', 'node_modules/fast-redact/', 'node_modules/sonic-boom/', 'node_modules/@pinojs/', 'node_modules/slow-redact/', 'src/logger.ts', 'src/identification/log.ts'), 'logging (pino)'],
  [has('node_modules/prom-client/', 'node_modules/tdigest/', 'node_modules/bintrees/', 'src/metrics/'), 'metrics (prom-client)'],
  [has('src/callers/', 'src/limits/', 'node_modules/@fastify/rate-limit/', 'node_modules/toad-cache/'), 'auth, rate limit, admission']
]
const GENERIC: Rule[] = [
  [has('src/identification/'), 'identification flow + events'],
  [has('node_modules/mercurius', 'node_modules/graphql', 'src/graphql/'), 'GraphQL (mercurius, graphql-jit, resolvers)'],
  [has('node_modules/fastify', 'node_modules/find-my-way/', 'node_modules/avvio/', 'node_modules/@fastify/', 'node_modules/fast-json-stringify', 'node_modules/secure-json-parse/', 'src/security-headers.ts', 'node_modules/helmet/'), 'Fastify routing, hooks, reply'],
  [has('node:_http', 'node:net', 'node:internal/stream', 'node:stream', 'node:internal/http', 'node:internal/net', 'node:internal/streams'), 'HTTP parse + socket I/O']
]

function relative (url: string): string {
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  return path.startsWith(ROOT) ? path.slice(ROOT.length) : path
}

/** Share of the main thread's busy time per step (fractions summing to 1), from a .cpuprofile. */
export function stepShares (file: string): Map<Step, number> {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const memo = new Map<number, Step | null>()
  const classify = (id: number): Step | null => {
    if (memo.has(id)) return memo.get(id) as Step | null
    const node = byId.get(id) as ProfileNode
    const fn = node.callFrame.functionName
    let step: Step | null = null
    if (fn === '(garbage collector)') step = 'garbage collection'
    else if (fn === '(idle)') step = null
    else {
      let generic: Step | undefined
      for (let at: number | undefined = id; at !== undefined && step === null; at = parent.get(at)) {
        const frame = (byId.get(at) as ProfileNode).callFrame
        const where = relative(frame.url)
        const specific = SPECIFIC.find(([test]) => test(where, frame.functionName))
        if (specific) step = specific[1]
        generic ??= GENERIC.find(([test]) => test(where, frame.functionName))?.[1]
      }
      step ??= generic ?? 'other (V8, builtins, unattributed)'
    }
    memo.set(id, step)
    return step
  }
  const time = new Map<Step, number>()
  let busy = 0
  profile.samples.forEach((id, i) => {
    const step = classify(id)
    if (step === null) return
    const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0 // a sample's time is the delta to the next
    time.set(step, (time.get(step) ?? 0) + dt)
    busy += dt
  })
  return new Map(STEPS.map(s => [s, (time.get(s) ?? 0) / Math.max(1, busy)]))
}
