// Scenario `adaptive` (issue 21, `npm run bench -- --only adaptive`): what ImageDetail.ADAPTIVE saves and costs
// against HIGH-only. Ours with the real Azure backend against the fake Azure in its own process, whose answers
// depend on the photo and on the detail sent (bench/lib/adaptive-corpus.ts: 80 clear photos, 20 unsure at LOW) and
// whose usage charges the image tokens of that detail (300 text tokens + 85 at low, the tile rule at high). Both
// modes upload the same 100 photos at concurrency 8, in alternating passes; the fake answers after the same latency
// at both details (conservative: a real LOW call is faster). Rows: image tokens per identification, answers on
// the clear photos, p50 latencies (one-look, two-look, HIGH-only), CPU per identification (the server's threads).
import os from 'node:os'
import { readFileSync } from 'node:fs'
import { accounted, livePids, processCpuSec, startFakeAzure, startServer, stop, type Child, type FakeChild } from './lib/children.ts'
import { corpus, corpusFile, corpusFiles, CORPUS_SIZE, type CorpusFile, type CorpusPhoto } from './lib/adaptive-corpus.ts'
import { PREFLIGHT_HEADERS } from './lib/operation.ts'
import { USAGE_TEXT_TOKENS } from '../test/support/fake-azure.ts'
import { median, percentile, spread, table } from './lib/stats.ts'

export interface AdaptiveRow { scenario: string, what: string, result: string, target: string, met: boolean | null }
export interface AdaptiveReport { rows: AdaptiveRow[], section: string, notes: string[] }
interface Context { log: (line: string) => void, rounds: number, quiet: () => Promise<void> }

const CONCURRENCY = 8
/** The fake's answer latency at both details (BENCH_ADAPTIVE_LATENCY_MS). */
const LATENCY_MS = Number(process.env.BENCH_ADAPTIVE_LATENCY_MS ?? 500)
/** What the fake charges per call besides the image (its usageByDetail). */
const TEXT_TOKENS = USAGE_TEXT_TOKENS
const TOKEN_TARGET = 0.35
const TWO_LOOK_TARGET = 2.1
const DEPLOYMENT = 'gpt-4o-vision'

type Mode = 'HIGH' | 'ADAPTIVE'

const OPERATION = `mutation Identify($image: Upload!, $detail: ImageDetail) {
  identifyVehicle(image: $image, detail: $detail) {
    id answer looks detailUsed
    vehicles { category kind make model confidence evidence }
    image { sha256 estimatedImageTokens sentWidth sentHeight }
    usage { promptTokens completionTokens }
  }
}`

interface Answered {
  photo: CorpusPhoto
  mode: Mode
  ms: number
  looks: number
  detailUsed: string
  promptTokens: number
  estimatedImageTokens: number
  /** answer + vehicles, as JSON: what is compared between the modes. */
  said: string
}

/** The unit of failure: a request that did not give a well-formed identification of the photo sent. */
class BadAnswer extends Error {}

async function identify (url: string, file: CorpusFile, mode: Mode): Promise<Answered> {
  const form = new FormData()
  form.append('operations', JSON.stringify({ query: OPERATION, variables: { image: null, detail: mode } }))
  form.append('map', JSON.stringify({ 0: ['variables.image'] }))
  form.append('0', new Blob([new Uint8Array(readFileSync(file.path))], { type: 'image/jpeg' }), 'photo.jpg')
  const started = performance.now()
  const response = await fetch(url, { method: 'POST', body: form, headers: PREFLIGHT_HEADERS })
  const text = await response.text()
  const ms = performance.now() - started
  let body: any
  try { body = JSON.parse(text) } catch { throw new BadAnswer(`HTTP ${response.status}, not JSON: ${text.slice(0, 200)}`) }
  const it = body?.data?.identifyVehicle
  if (body?.errors?.length > 0 || it == null) {
    const e = body?.errors?.[0]
    throw new BadAnswer(`HTTP ${response.status}: ${e?.extensions?.code ?? ''} ${String(e?.message ?? 'no data').slice(0, 300)}`)
  }
  if (it.image?.sha256 !== file.sha256) throw new BadAnswer(`photo ${file.photo.index}: the answer is for another image`)
  if (it.usage == null) throw new BadAnswer(`photo ${file.photo.index}: no usage (not the Azure backend?)`)
  return {
    photo: file.photo,
    mode,
    ms,
    looks: it.looks,
    detailUsed: it.detailUsed,
    promptTokens: it.usage.promptTokens,
    estimatedImageTokens: it.image.estimatedImageTokens,
    said: JSON.stringify({ answer: it.answer, vehicles: it.vehicles })
  }
}

/** Fails with a clear message unless the server answers ADAPTIVE adaptively: LOW for a clear photo, LOW then HIGH for an unsure one. */
export async function selfCheck (url: string, fake: FakeChild, files: CorpusFile[]): Promise<void> {
  const clear = files.find(f => f.photo.unsure === null)
  const unsure = files.find(f => f.photo.unsure !== null)
  if (!clear || !unsure) throw new Error('adaptive self-check: the corpus needs a clear and an unsure photo')
  const before = (await fake.stats()).byDetail
  let one: Answered
  try {
    one = await identify(url, clear, 'ADAPTIVE')
  } catch (err) {
    const message = (err as Error).message
    if (/ADAPTIVE|looks|detailUsed/.test(message)) {
      throw new Error(`adaptive self-check: the server does not know ImageDetail.ADAPTIVE (or Identification.looks/detailUsed): ${message.trim().replace(/\.+$/, '')}. ` +
        'Issue 21\'s flow is not in this build: nothing measured.')
    }
    throw err
  }
  const two = await identify(url, unsure, 'ADAPTIVE')
  const after = (await fake.stats()).byDetail
  const sent = (d: string): number => (after[d] ?? 0) - (before[d] ?? 0)
  const problems: string[] = []
  if (one.looks !== 1 || one.detailUsed !== 'LOW') problems.push(`a clear photo took looks ${one.looks}, detailUsed ${one.detailUsed} (expected 1, LOW)`)
  if (two.looks !== 2 || two.detailUsed !== 'HIGH') problems.push(`an unsure photo (${unsure.photo.unsure}) took looks ${two.looks}, detailUsed ${two.detailUsed} (expected 2, HIGH)`)
  if (sent('low') !== 2 || sent('high') !== 1) problems.push(`the fake saw ${JSON.stringify({ low: sent('low'), high: sent('high'), other: sent('auto') })} calls (expected 2 low, 1 high)`)
  if (two.said !== JSON.stringify({ answer: unsure.photo.high.answer, vehicles: unsure.photo.high.vehicles })) problems.push('the two-look answer is not the HIGH look\'s')
  if (problems.length > 0) throw new Error(`adaptive self-check: ADAPTIVE is accepted but does not behave as issue 21 says: ${problems.join('; ')}`)
}

interface Pass {
  mode: Mode
  answered: Answered[]
  failures: string[]
  wallSec: number
  /** Server CPU (all threads), seconds. */
  cpuSec: number
  foreignShare: number
  byDetail: Record<string, number>
}

async function pass (
  url: string, server: Child, fake: FakeChild, files: CorpusFile[], mode: Mode, quiet: () => Promise<void>
): Promise<Pass> {
  await quiet()
  const answered: Answered[] = []
  const failures: string[] = []
  const before = (await fake.stats()).byDetail
  // The process's own counter: it keeps the time of threads that ended (libvips' workers come and go), a sum over
  // /proc/<pid>/task would lose it.
  const cpu0 = processCpuSec(server.pid)
  let next = 0
  const { cpu } = await accounted(livePids(), async () => {
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < files.length) {
        const file = files[next++] as CorpusFile
        try { answered.push(await identify(url, file, mode)) } catch (err) { failures.push((err as Error).message) }
      }
    }))
  })
  const cpu1 = processCpuSec(server.pid)
  const after = (await fake.stats()).byDetail
  const byDetail = Object.fromEntries(Object.keys(after).map(d => [d, (after[d] ?? 0) - (before[d] ?? 0)]))
  return {
    mode,
    answered,
    failures,
    wallSec: cpu.wallSec,
    cpuSec: cpu1 - cpu0,
    foreignShare: cpu.foreignSec / cpu.wallSec,
    byDetail
  }
}

/** Image tokens the fake charged for one identification: its prompt tokens less the text of each call. */
const imageTokens = (a: Answered): number => a.promptTokens - TEXT_TOKENS * a.looks
const sum = (values: number[]): number => values.reduce((n, v) => n + v, 0)
const p50 = (values: number[]): number => percentile(values, 50)

export async function scenarioAdaptive ({ log, rounds, quiet }: Context): Promise<AdaptiveReport> {
  const rows: AdaptiveRow[] = []
  const notes: string[] = []
  const photos = corpus()
  log(`adaptive: ${CORPUS_SIZE} colour-keyed photos (${photos.filter(p => p.unsure === null).length} clear, ${photos.filter(p => p.unsure !== null).length} unsure at LOW); making any not cached yet`)
  const files = await corpusFiles(photos)
  const loadStart = os.loadavg()
  const fake = await startFakeAzure(LATENCY_MS, { BENCH_FAKE_ANSWERS: 'adaptive' })
  const children: Child[] = [fake]
  const passes: Pass[] = []
  try {
    const env = { ...fake.env, VISION_MAX_CONCURRENCY: '64', BENCH_VISION: 'azure', AZURE_OPENAI_ENDPOINT: fake.origin, AZURE_OPENAI_DEPLOYMENT: DEPLOYMENT }
    const server = await startServer('ours-adaptive', 'peers/ours.ts', { env })
    children.unshift(server)
    const url = `http://127.0.0.1:${server.port}/graphql`
    await selfCheck(url, fake, files)
    log(`  self-check passed: a clear photo took one LOW look, an unsure one LOW then HIGH; fake latency ${LATENCY_MS} ms at both details, concurrency ${CONCURRENCY}`)
    // Warm-up: a few photos in each mode (JIT, the token, sharp's first decodes).
    for (const mode of ['HIGH', 'ADAPTIVE'] as const) await pass(url, server, fake, files.slice(0, 16), mode, quiet)
    for (let round = 0; round < rounds; round++) {
      const order: Mode[] = round % 2 === 0 ? ['HIGH', 'ADAPTIVE'] : ['ADAPTIVE', 'HIGH']
      for (const mode of order) {
        const p = await pass(url, server, fake, files, mode, quiet)
        passes.push(p)
        const two = p.answered.filter(a => a.looks === 2).length
        log(`  round ${round + 1} ${mode}: ${p.answered.length} answers in ${p.wallSec.toFixed(1)} s, p50 ${p50(p.answered.map(a => a.ms)).toFixed(0)} ms` +
          `${mode === 'ADAPTIVE' ? `, ${two} took two looks` : ''}; fake saw ${JSON.stringify(p.byDetail)}; server CPU ${(1000 * p.cpuSec / Math.max(1, p.answered.length)).toFixed(0)} ms per identification` +
          `${p.failures.length ? `; ${p.failures.length} FAILURES, first: ${p.failures[0]}` : ''}`)
        if (p.failures.length > 0) notes.push(`Adaptive, round ${round + 1}, ${mode}: ${p.failures.length} failed requests (first: ${p.failures[0]}).`)
      }
    }
  } finally {
    for (const child of children) await stop(child)
  }
  const loadEnd = os.loadavg()

  const of = (mode: Mode): Pass[] => passes.filter(p => p.mode === mode && p.failures.length === 0 && p.answered.length === CORPUS_SIZE)
  const high = of('HIGH')
  const adaptive = of('ADAPTIVE')
  if (high.length === 0 || adaptive.length === 0) {
    const result = 'INVALID: no pass without failures (see notes)'
    rows.push({ scenario: 'adaptive', what: 'ADAPTIVE against HIGH-only', result, target: '—', met: false })
    return { rows, notes, section: '' }
  }
  // Per round (pairs of passes), then the median over rounds.
  const pairs = high.map((h, i) => [h, adaptive[i]] as const).filter((pair): pair is readonly [Pass, Pass] => pair[1] !== undefined)
  const tokenShare = pairs.map(([h, a]) => sum(a.answered.map(imageTokens)) / sum(h.answered.map(imageTokens)))
  const estimated = (p: Pass): number => sum(p.answered.map(x => x.estimatedImageTokens))
  const estimatedShare = pairs.map(([h, a]) => estimated(a) / estimated(h))
  const perId = (p: Pass): number => sum(p.answered.map(imageTokens)) / p.answered.length
  const twoShare = adaptive.map(p => p.answered.filter(a => a.looks === 2).length / p.answered.length)
  const tileRule = sum(corpus().map(p => 85 + (p.unsure === null ? 0 : p.highTokens))) / sum(corpus().map(p => p.highTokens))
  const tokensMet = tokenShare.every(s => s <= TOKEN_TARGET)
  rows.push({
    scenario: 'adaptive',
    what: `image tokens per identification (the fake's usage less ${TEXT_TOKENS} text tokens per call), ADAPTIVE ÷ HIGH-only, ${CORPUS_SIZE} photos, ` +
      `${(100 * median(twoShare)).toFixed(0)} % took two looks`,
    result: `${spread(tokenShare.map(s => 100 * s), 1, ' %')} (${spread(adaptive.map(perId))} vs ${spread(high.map(perId))} tokens; ` +
      `tile rule for this corpus: ${(100 * tileRule).toFixed(1)} %; image.estimatedImageTokens: ${spread(estimatedShare.map(s => 100 * s), 1, ' %')})`,
    target: `≤ ${100 * TOKEN_TARGET} % (every round)`,
    met: tokensMet
  })

  // Answers: on every clear photo, ADAPTIVE's answer and vehicles equal HIGH-only's (same round).
  const clearIds = new Set(corpus().filter(p => p.unsure === null).map(p => p.index))
  const equal = pairs.map(([h, a]) => {
    const highSaid = new Map(h.answered.map(x => [x.photo.index, x.said]))
    return a.answered.filter(x => clearIds.has(x.photo.index) && x.said === highSaid.get(x.photo.index)).length
  })
  const unsureEqual = pairs.map(([h, a]) => {
    const highSaid = new Map(h.answered.map(x => [x.photo.index, x.said]))
    return a.answered.filter(x => !clearIds.has(x.photo.index) && x.said === highSaid.get(x.photo.index)).length
  })
  rows.push({
    scenario: 'adaptive',
    what: `ADAPTIVE's answers equal to HIGH-only's on the ${clearIds.size} clear photos (answer and vehicles)`,
    result: `${equal.join(', ')} of ${clearIds.size} per round (unsure photos, answered by the second look: ${unsureEqual.join(', ')} of ${CORPUS_SIZE - clearIds.size})`,
    target: 'all',
    met: equal.every(n => n === clearIds.size)
  })

  // Latency: p50 per pass, median over rounds.
  const highP50 = high.map(p => p50(p.answered.map(a => a.ms)))
  const oneP50 = adaptive.map(p => p50(p.answered.filter(a => a.looks === 1).map(a => a.ms)))
  const twoP50 = adaptive.map(p => p50(p.answered.filter(a => a.looks === 2).map(a => a.ms)))
  const sameHighP50 = high.map(p => p50(p.answered.filter(a => clearIds.has(a.photo.index)).map(a => a.ms)))
  rows.push({
    scenario: 'adaptive',
    what: `p50 latency: one-look ADAPTIVE vs HIGH-only (all ${CORPUS_SIZE} photos); fake ${LATENCY_MS} ms per call, c=${CONCURRENCY}`,
    result: `${spread(oneP50)} ms vs ${spread(highP50)} ms; lower in ${oneP50.filter((v, i) => v <= (highP50[i] ?? NaN)).length} of ${oneP50.length} rounds ` +
      `(HIGH-only on the same ${clearIds.size} clear photos: ${spread(sameHighP50)} ms)`,
    target: '≤',
    met: median(oneP50) <= median(highP50)
  })
  const twoRatio = adaptive.map((_, i) => (twoP50[i] as number) / (oneP50[i] as number))
  rows.push({
    scenario: 'adaptive',
    what: 'p50 latency: two-look ADAPTIVE ÷ one-look ADAPTIVE',
    result: `${spread(twoRatio, 2, '×')} (${spread(twoP50)} ms vs ${spread(oneP50)} ms)`,
    target: `≤ ${TWO_LOOK_TARGET}×`,
    met: median(twoRatio) <= TWO_LOOK_TARGET
  })
  const cpuMs = (p: Pass): number => 1000 * p.cpuSec / p.answered.length
  rows.push({
    scenario: 'adaptive',
    what: 'server CPU per identification (the process, /proc), ADAPTIVE vs HIGH-only (the speculative HIGH prepare included)',
    result: `${spread(adaptive.map(cpuMs))} ms vs ${spread(high.map(cpuMs))} ms`,
    target: '(for comparison)',
    met: null
  })

  const extraCpu = median(adaptive.map(cpuMs)) - median(high.map(cpuMs))
  if (extraCpu > 0.1 * median(high.map(cpuMs))) {
    notes.push(`Adaptive: ADAPTIVE used ${extraCpu.toFixed(0)} ms more server CPU per identification than HIGH-only although only ` +
      `${(100 * median(twoShare)).toFixed(0)} % of them used the HIGH image: the flow prepares the HIGH image for every identification while ` +
      'the LOW call is out (abandoned only if its sharp job has not started yet; behind a model call of ' +
      `${LATENCY_MS} ms it always has), so every photo is decoded twice. On a busy CPU that work likely delays other requests' first looks.`)
  }
  const foreign = passes.map(p => p.foreignShare)
  const detailRows = passes.map((p, i) => [String(Math.floor(i / 2) + 1), p.mode, `${p.answered.length}/${CORPUS_SIZE}`,
    String(p.answered.filter(a => a.looks === 2).length), JSON.stringify(p.byDetail),
    (sum(p.answered.map(imageTokens)) / p.answered.length).toFixed(0),
    p50(p.answered.map(a => a.ms)).toFixed(0), percentile(p.answered.map(a => a.ms), 95).toFixed(0), cpuMs(p).toFixed(0),
    `${(100 * p.foreignShare).toFixed(0)} %`])
  const section = '### ADAPTIVE detail against HIGH-only (issue 21)\n\n' +
    'bench/adaptive.ts: ours (`npm start` defaults: history on SQLite, thumbnails; the result cache off) with the real Azure backend against the fake Azure ' +
    'in its own process (bench/fake-azure.ts with BENCH_FAKE_ANSWERS=adaptive): it keys each request by the sent image\'s mean colour and ' +
    `answers by the detail sent (test/support/fake-azure.ts detailAwareAnswers), charging ${TEXT_TOKENS} text tokens plus the image's tokens at that detail ` +
    `(85 at low, the tile rule at high: usageByDetail), after ${LATENCY_MS} ms at either detail (conservative: a real LOW call is faster). ` +
    `Corpus (bench/lib/adaptive-corpus.ts): ${CORPUS_SIZE} JPEGs of one colour with noise (photoOfColour): 40 × 4032×3024, 20 × 3024×4032, 30 × 1920×1080, ` +
    `10 × 400×250; ${clearIds.size} clear (the LOW look answers HIGH or MEDIUM, as the HIGH look does), ${CORPUS_SIZE - clearIds.size} unsure at LOW ` +
    '(no vehicle, LOW confidence, TOO_SMALL or UNCLEAR, five each; the ten 400×250 among them) and confident at HIGH. ' +
    `Each pass uploads all ${CORPUS_SIZE} photos at concurrency ${CONCURRENCY} (a fetch client in bench/run.ts's process); ${rounds} rounds, ` +
    'HIGH-only and ADAPTIVE alternating (the first of a round alternates), after a 16-photo warm-up in each mode; a pass with any failed request is left out. ' +
    'Image tokens: from the usage the fake reported, less the text tokens of each call; CPU: the server process\'s CPU time (/proc/<pid>/stat, all threads, ended ones included) over the pass ÷ its identifications. ' +
    `The machine is shared (2 cores, other sessions' tests): load average (1, 5, 15 min) ${loadStart.map(l => l.toFixed(2)).join(' ')} before this scenario, ` +
    `${loadEnd.map(l => l.toFixed(2)).join(' ')} after; other processes used ${spread(foreign.map(s => 100 * s), 0, ' %')} of a core during the passes.\n\n` +
    table(['round', 'mode', 'answers', 'two looks', 'calls by detail (fake)', 'image tokens / id', 'p50 ms', 'p95 ms', 'CPU ms / id', 'others\' CPU'], detailRows)
  return { rows, notes, section }
}

/** --quick: the self-check alone, on two small photos of the corpus (a clear and an unsure one): a few seconds. */
export async function quickAdaptive (log: (line: string) => void): Promise<void> {
  const photos = corpus().filter(p => p.width === 1920)
  const picked = [photos.find(p => p.unsure === null), photos.find(p => p.unsure !== null)] as CorpusPhoto[]
  const files = await Promise.all(picked.map(corpusFile))
  const fake = await startFakeAzure(0, { BENCH_FAKE_ANSWERS: 'adaptive' })
  const children: Child[] = [fake]
  try {
    const env = { ...fake.env, BENCH_VISION: 'azure', AZURE_OPENAI_ENDPOINT: fake.origin, AZURE_OPENAI_DEPLOYMENT: DEPLOYMENT }
    const server = await startServer('ours-adaptive', 'peers/ours.ts', { env })
    children.unshift(server)
    await selfCheck(`http://127.0.0.1:${server.port}/graphql`, fake, files)
    log('quick: adaptive: a clear photo took one LOW look, an unsure one LOW then HIGH (the fake saw 2 low, 1 high)')
  } finally {
    for (const child of children) await stop(child)
  }
}
