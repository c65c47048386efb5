// Scenario `bulk` (issue 20's Numbers, `npm run bench -- --only bulk [--bulk-photos N]`): a bulk job of N (default
// 2,000) synthetic phone photos (bench/lib/bulk-corpus.ts: 12 MP JPEGs, EXIF orientation and GPS, baseline and
// progressive, ~0.7 MB each, a stored ZIP of ~1.3 GB made once into CACHE_DIR) uploaded with createBulkJob over real
// HTTP to ours with `npm start`'s defaults (the simulated backend, so the job runs ONLINE; history on SQLite in a
// temporary DATA_DIR; BULK_* and VISION_* at their defaults) plus what makes it measurable: AUTH_MODE=apikey (bulk
// jobs need a signed-in caller; the interactive caller has its own key) and, as for ours everywhere in the bench, the
// rate limits lifted and the result cache off. Measured in one run:
//   1. the server's peak RSS above its idle baseline while receiving and preparing (VmHWM, reset to the idle RSS
//      just before the upload through /proc/<pid>/clear_refs; else the largest VmRSS sampled every 100 ms): < 200 MB;
//   2. preparation's CPU per photo (the server's threads while the job is PREPARING, ÷ the photos) against the image
//      pipeline's own on the same 20 base photos (bench/pipeline.ts, one core, the job's detail): within 20 %;
// Then the job must be COMPLETED with every photo SUCCEEDED, each item's identification the photo's sha256.
//   3. an interactive caller's p99 (autocannon, c=8, the ~100 KB photo, another API key) while a second job of the
//      same archive is worked, against its p99 without a job (before the first and after the second): within 20 %.
//      With the simulated backend an ONLINE job's answers take ~1 ms a photo (2,000 in seconds): the window falls in
//      its preparation, the part that loads the server; the job is cancelled after the window.
// Takes ~15 minutes at 2,000 photos on 2 shared cores (preparation is ~0.3 s of CPU per 12 MP photo): not in the
// default --only list. --quick runs quickBulk: a 20-photo archive checked end to end (~10 s), no timing judged.
import { randomUUID } from 'node:crypto'
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request, type IncomingMessage } from 'node:http'
import os from 'node:os'
import { delimiter, join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { setTimeout as sleep } from 'node:timers/promises'
import { newApiKey } from '../src/callers/api-keys.ts'
import { bulkArchive, BASES, type BulkArchive } from './lib/bulk-corpus.ts'
import { memory, processCpuSec, start, startServer, stop, type Child } from './lib/children.ts'
import type { BenchImage } from './lib/images.ts'
import { PREFLIGHT_HEADERS } from './lib/operation.ts'
import type { LoadJob, LoadResult, PipelineReply, PipelineRun } from './lib/protocol.ts'
import { MiB, mib, table } from './lib/stats.ts'

export interface BulkRow { scenario: string, what: string, result: string, target: string, met: boolean | null }
export interface BulkReport { rows: BulkRow[], section: string, notes: string[] }
export interface BulkContext {
  log: (line: string) => void
  /** One load run (run.ts's measure: waits for a quiet machine, accounts other processes' CPU). */
  measure: (key: string, job: LoadJob) => Promise<LoadResult>
  /** The ~100 KB photo of the headline: the interactive caller's upload. */
  photo: BenchImage
  photos: number
  /** Seconds per interactive load run. */
  duration: number
  /** Pin the pipeline child to a core (taskset), as scenario 3 does. */
  pin: boolean
}

export const DEFAULT_BULK_PHOTOS = 2000
/** BULK_MAX_ARCHIVE_BYTES' default: the bench runs the defaults, so its archive stays within it. */
const DEFAULT_MAX_ARCHIVE_BYTES = 2 * 1024 * MiB
const SIM_ANSWER = '[SIMULATED]'
const INTERACTIVE_CONNECTIONS = 8
const RSS_TARGET_BYTES = 200e6
const PREPARE_TARGET = 1.2
const P99_TARGET = 1.2
/** The default VISION_IMAGE_DETAIL (adaptive) prepares a job's photos at high detail. */
const PREPARED_DETAIL = 'high'
/** BULK_PREPARE_CONCURRENCY's default: photos prepared at once. */
const PREPARE_CONCURRENCY = 1
/** The job's status is asked this often: every poll is a GraphQL request (and a count of the items) the server's CPU includes. */
const POLL_MS = 500
/** The server's VmRSS is read this often (from /proc: nothing asked of the server). */
const SAMPLE_MS = 100
/** Rounds of the pipeline child over the base photos (after a warm-up round). */
const PIPELINE_RUNS = 3

const CREATE = 'mutation ($archive: Upload) { createBulkJob(archive: $archive) { id status mode } }'
const STATUS = 'query ($id: ID!) { bulkJob(id: $id) { status mode counts { total pending succeeded failed cancelled } } }'
const ITEMS = `query ($id: ID!, $after: String) { bulkJob(id: $id) { items(first: 100, after: $after) {
  edges { node { name status code identification { bulkJobId answer image { sha256 } } } } pageInfo { hasNextPage endCursor } } } }`

interface Counts { total: number, pending: number, succeeded: number, failed: number, cancelled: number }
interface JobState { status: string, mode: string, counts: Counts }

/**
 * Bulk jobs need a signed-in caller (anonymous callers share one identity): ours runs with AUTH_MODE=apikey and two
 * keys, the bulk job's caller and the interactive one (another caller, as in the field).
 */
export interface Keys { env: Record<string, string>, bulk: Record<string, string>, interactive: Record<string, string> }

export function apiKeys (): Keys {
  const bulk = newApiKey('bench-bulk')
  const interactive = newApiKey('bench-field')
  return {
    env: { AUTH_MODE: 'apikey', API_KEY_HASHES: `${bulk.entry},${interactive.entry}` },
    bulk: { 'x-api-key': bulk.key },
    interactive: { 'x-api-key': interactive.key }
  }
}

async function graphql (url: string, auth: Record<string, string>, query: string, variables: Record<string, unknown>): Promise<any> {
  const response = await fetch(url, { method: 'POST', headers: { ...PREFLIGHT_HEADERS, ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) })
  const body = await response.json() as { data?: any, errors?: Array<{ message: string, extensions?: { code?: string } }> }
  if (body.errors !== undefined && body.errors.length > 0) {
    throw new Error(`HTTP ${response.status}: ${body.errors.map(e => `${e.extensions?.code ?? ''} ${e.message}`).join('; ').slice(0, 300)}`)
  }
  return body.data
}

async function jobState (url: string, auth: Record<string, string>, id: string): Promise<JobState> {
  const job = (await graphql(url, auth, STATUS, { id })).bulkJob as JobState | null
  if (job === null) throw new Error(`bulkJob(${id}) is null`)
  return job
}

/** createBulkJob with the archive streamed from disk as the body of one multipart request (a client's curl -F). */
export async function uploadArchive (
  url: string, auth: Record<string, string>, archive: BulkArchive
): Promise<{ id: string, status: string, mode: string }> {
  const boundary = `agrivision-bench-${randomUUID()}`
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${JSON.stringify({ query: CREATE, variables: { archive: null } })}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n${JSON.stringify({ 0: ['variables.archive'] })}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="photos.zip"\r\nContent-Type: application/zip\r\n\r\n`)
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  const req = request(url, {
    method: 'POST',
    headers: { ...PREFLIGHT_HEADERS, ...auth, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + archive.bytes + tail.length) }
  })
  const answered = new Promise<IncomingMessage>((resolve, reject) => { req.once('response', resolve); req.once('error', reject) })
  req.write(head)
  const file = createReadStream(archive.path)
  file.pipe(req, { end: false })
  file.once('end', () => { req.end(tail) })
  const response = await answered
  file.destroy()
  let text = ''
  for await (const chunk of response) text += String(chunk)
  let body: any
  try { body = JSON.parse(text) } catch { throw new Error(`createBulkJob: HTTP ${response.statusCode}, not JSON: ${text.slice(0, 200)}`) }
  const created = body?.data?.createBulkJob
  if (body?.errors?.length > 0 || created == null) throw new Error(`createBulkJob: HTTP ${response.statusCode}: ${JSON.stringify(body?.errors ?? body).slice(0, 300)}`)
  return created
}

/** Every item SUCCEEDED, with an identification of this job whose sha256 is its photo's; throws on the first problem. */
async function checkItems (url: string, auth: Record<string, string>, id: string, archive: BulkArchive): Promise<void> {
  const seen = new Set<string>()
  let after: string | null = null
  for (;;) {
    const page: any = (await graphql(url, auth, ITEMS, { id, after })).bulkJob.items
    for (const { node } of page.edges as Array<{ node: any }>) {
      const expected = archive.sha256[node.name]
      if (expected === undefined) throw new Error(`an item named ${String(node.name).slice(0, 80)} is not in the archive`)
      if (node.status !== 'SUCCEEDED') throw new Error(`${node.name}: ${node.status} ${node.code ?? ''}`)
      const it = node.identification
      if (it?.bulkJobId !== id || it.image?.sha256 !== expected || !String(it.answer).startsWith(SIM_ANSWER)) {
        throw new Error(`${node.name}: a wrong identification: ${JSON.stringify(it).slice(0, 200)}`)
      }
      seen.add(node.name)
    }
    if (!page.pageInfo.hasNextPage) break
    after = page.pageInfo.endCursor
  }
  if (seen.size !== archive.photos) throw new Error(`${seen.size} items listed for ${archive.photos} photos`)
}

function bulkRecords (dataDir: string, id: string): number {
  const db = new DatabaseSync(join(dataDir, 'history.db'), { readOnly: true })
  try {
    return Number((db.prepare('SELECT count(*) AS n FROM identifications WHERE bulk_job_id = ?').get(id) as { n: number }).n)
  } finally {
    db.close()
  }
}

/** Watches a job: its latest state every POLL_MS, and when each status was first seen. */
export class JobWatch {
  state: JobState | null = null
  readonly firstSeen = new Map<string, number>()
  error: Error | null = null
  #stopped = false
  readonly #done: Promise<void>

  constructor (url: string, auth: Record<string, string>, id: string, onPoll: () => void) {
    this.#done = (async () => {
      while (!this.#stopped) {
        try {
          this.state = await jobState(url, auth, id)
          if (!this.firstSeen.has(this.state.status)) this.firstSeen.set(this.state.status, performance.now())
        } catch (err) {
          this.error = err as Error
          return
        }
        onPoll()
        await sleep(POLL_MS)
      }
    })()
  }

  /** Resolves once the job has one of `statuses`; throws after `timeoutMs` or when the job ends otherwise. */
  async until (statuses: string[], timeoutMs: number): Promise<JobState> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      if (this.error !== null) throw this.error
      const state = this.state
      if (state !== null && statuses.includes(state.status)) return state
      if (state !== null && ['COMPLETED', 'FAILED', 'CANCELLED'].includes(state.status)) throw new Error(`the job ended ${state.status} (${JSON.stringify(state.counts)})`)
      if (performance.now() > deadline) throw new Error(`the job is still ${state?.status ?? 'unknown'} after ${(timeoutMs / 1000).toFixed(0)} s (${JSON.stringify(state?.counts)})`)
      await sleep(POLL_MS / 2)
    }
  }

  async stop (): Promise<void> {
    this.#stopped = true
    await this.#done
  }
}

/** Resets the process's VmHWM to its current RSS (Linux: "5" to /proc/<pid>/clear_refs); false when it cannot. */
export function resetPeakRss (pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** The image pipeline's own figures on the archive's base photos, one core (scenario 3's child), weighed by photos per base. */
async function pipelineBaseline (archive: BulkArchive, pin: boolean): Promise<{ cpuMs: number, wallMs: number, runs: PipelineRun[] }> {
  const bases = archive.bases.filter((_, i) => (archive.perBase[i] ?? 0) > 0)
  const { child, ready } = await start<PipelineReply>('pipeline-bulk', 'pipeline.ts', '*', {
    ...(pin ? { cpu: 0 } : {}),
    env: {
      UV_THREADPOOL_SIZE: '1',
      BENCH_PIPELINE_INPUT: bases.map(b => b.path).join(delimiter),
      BENCH_PIPELINE_DETAILS: PREPARED_DETAIL,
      BENCH_PIPELINE_RUNS: String(PIPELINE_RUNS)
    },
    timeoutMs: 600_000
  })
  await stop(child, 2000)
  if (ready.type === 'error') throw new Error(`the pipeline child failed: ${ready.message.split('\n')[0]}`)
  let photos = 0
  let cpuMs = 0
  let wallMs = 0
  bases.forEach((base, i) => {
    const run = ready.runs[i] as PipelineRun
    const n = archive.perBase[base.index] as number
    photos += n
    cpuMs += n * run.cpuMs
    wallMs += n * run.p50
  })
  return { cpuMs: cpuMs / photos, wallMs: wallMs / photos, runs: ready.runs }
}

function loadJob (url: string, auth: Record<string, string>, photo: BenchImage, duration: number): LoadJob {
  const expect = { expectSha256: photo.sha256, expectAnswerPrefix: SIM_ANSWER }
  return { headers: auth, url, file: photo.path, connections: INTERACTIVE_CONNECTIONS, timeout: 30, duration, ...expect }
}

function loadFailures (r: LoadResult): number {
  return r.non2xx + r.errors + r.timeouts + r.mismatches
}

export async function scenarioBulk (ctx: BulkContext): Promise<BulkReport> {
  const { log, photos } = ctx
  const rows: BulkRow[] = []
  const notes: string[] = []
  const made = performance.now()
  const archive = await bulkArchive(photos)
  const madeSec = (performance.now() - made) / 1000
  if (archive.bytes > DEFAULT_MAX_ARCHIVE_BYTES) {
    throw new Error(`the archive of ${photos} photos (${mib(archive.bytes)}) is over BULK_MAX_ARCHIVE_BYTES' default (2 GiB): use fewer photos`)
  }
  log(`bulk: ${photos} photos (${Math.min(photos, BASES)} bases of 12 MP, ${(archive.photoBytes / photos / 1e6).toFixed(2)} MB on average), ` +
    `a stored ZIP of ${mib(archive.bytes)}${madeSec > 1 ? ` (made in ${madeSec.toFixed(0)} s)` : ' (cached)'}`)

  log(`  the image pipeline alone on the ${Math.min(photos, BASES)} bases in turn, one core, detail ${PREPARED_DETAIL}, ${PIPELINE_RUNS} rounds (bench/pipeline.ts)`)
  const first = await pipelineBaseline(archive, ctx.pin)
  log(`    ${first.cpuMs.toFixed(0)} ms CPU per photo, p50 ${first.wallMs.toFixed(0)} ms wall (weighed by photos per base)`)

  const dataDir = mkdtempSync(join(os.tmpdir(), 'agrivision-bench-bulk-'))
  const keys = apiKeys()
  let server: (Child & { port: number }) | null = null
  let watch: JobWatch | null = null
  try {
    server = await startServer('ours-bulk', 'peers/ours.ts', { env: { ...keys.env, BENCH_VISION: 'simulated', BENCH_DATA_DIR: dataDir } })
    const { pid } = server
    const url = `http://127.0.0.1:${server.port}/graphql`
    const { duration: _, ...warmUp } = loadJob(url, keys.interactive, ctx.photo, 0)
    await ctx.measure('Bulk', { ...warmUp, amount: 200 })
    const before = await ctx.measure('Bulk', loadJob(url, keys.interactive, ctx.photo, ctx.duration))
    log(`  interactive without a job (before): p99 ${before.p99} ms, p50 ${before.p50} ms, ${before.rps.toFixed(0)} req/s${loadFailures(before) ? ' WITH FAILURES' : ''}`)

    // Job 1: receiving and preparing alone (no other load), then answered; every item checked.
    await sleep(2000)
    const idle = memory(pid).rss
    let reset = resetPeakRss(pid)
    let sampledMax = idle
    const sample = (): void => { try { sampledMax = Math.max(sampledMax, memory(pid).rss) } catch {} }
    const sampler = setInterval(sample, SAMPLE_MS)
    const cpu0 = processCpuSec(pid)
    const t0 = performance.now()
    let created: { id: string, mode: string }
    try {
      created = await uploadArchive(url, keys.bulk, archive)
    } catch (err) {
      clearInterval(sampler)
      throw err
    }
    const t1 = performance.now()
    const cpu1 = processCpuSec(pid)
    sample()
    const receivingPeak = (reset ? memory(pid).peakRss : sampledMax) - idle
    // From here the peak of preparing alone (VmHWM again from the current RSS).
    reset &&= resetPeakRss(pid)
    sampledMax = memory(pid).rss
    log(`  received in ${((t1 - t0) / 1000).toFixed(1)} s (${(archive.bytes / MiB / ((t1 - t0) / 1000)).toFixed(0)} MiB/s), ` +
      `RSS +${mib(receivingPeak)} above idle at most, mode ${created.mode}; preparing`)
    let preparedAt = 0
    let preparedCpu = 0
    watch = new JobWatch(url, keys.bulk, created.id, sample)
    try {
      await watch.until(['RUNNING', 'SUBMITTED', 'COMPLETED'], photos * 3000 + 120_000)
      preparedAt = performance.now()
      preparedCpu = processCpuSec(pid)
    } finally {
      clearInterval(sampler)
    }
    sample()
    const { peakRss } = memory(pid)
    const preparingPeak = (reset ? peakRss : sampledMax) - idle
    const peakRise = Math.max(receivingPeak, preparingPeak)
    const preparingFrom = watch.firstSeen.get('PREPARING') ?? t1
    const prepareWallMs = (preparedAt - preparingFrom) / photos * PREPARE_CONCURRENCY
    const prepareCpuMs = (preparedCpu - cpu1) * 1000 / photos
    log(`  prepared in ${((preparedAt - t1) / 1000).toFixed(0)} s: ${prepareCpuMs.toFixed(0)} ms CPU and ${prepareWallMs.toFixed(0)} ms wall per photo; ` +
      `RSS +${mib(preparingPeak)} above idle at most (${reset ? 'VmHWM' : 'sampled VmRSS'}; idle ${mib(idle)})`)
    const finished = await watch.until(['COMPLETED'], photos * 1000 + 120_000)
    const completedAt = watch.firstSeen.get('COMPLETED') as number
    await watch.stop()
    watch = null
    const c = finished.counts
    if (c.total !== photos || c.succeeded !== photos) throw new Error(`the job COMPLETED with ${JSON.stringify(c)} for ${photos} photos`)
    await checkItems(url, keys.bulk, created.id, archive)
    log(`  COMPLETED ${((completedAt - preparedAt) / 1000).toFixed(1)} s after preparation (ONLINE): ${c.succeeded} of ${photos} photos answered, each checked`)

    // Job 2, the same archive: the interactive caller while a job is worked (preparing, then answered ONLINE); cancelled after.
    const second = await uploadArchive(url, keys.bulk, archive)
    watch = new JobWatch(url, keys.bulk, second.id, () => {})
    const during = await ctx.measure('Bulk', loadJob(url, keys.interactive, ctx.photo, ctx.duration))
    const w1 = performance.now()
    const seen = [...watch.firstSeen.entries()].filter(([, at]) => at <= w1).map(([status]) => status)
    const ended = ['COMPLETED', 'CANCELLED', 'FAILED'].map(s => watch?.firstSeen.get(s)).find(at => at !== undefined)
    // The load itself ran its last durationSec (measure may first have waited for a quiet machine).
    const loadStart = w1 - during.durationSec * 1000
    const activeSec = ((ended ?? w1) - loadStart) / 1000
    if (ended === undefined) await graphql(url, keys.bulk, 'mutation ($id: ID!) { cancelBulkJob(id: $id) { status } }', { id: second.id })
    await watch.until(['CANCELLED', 'COMPLETED'], 120_000)
    await watch.stop()
    watch = null
    log(`  interactive during a job: p99 ${during.p99} ms, p50 ${during.p50} ms, ${during.rps.toFixed(0)} req/s; the job was ${seen.join(' → ')} ` +
      `for ${Math.max(0, activeSec).toFixed(1)} s of the ${during.durationSec.toFixed(1)} s${ended === undefined ? ', then cancelled' : ''}`)

    const after = await ctx.measure('Bulk', loadJob(url, keys.interactive, ctx.photo, ctx.duration))
    log(`  interactive without a job (after): p99 ${after.p99} ms, p50 ${after.p50} ms, ${after.rps.toFixed(0)} req/s`)
    await stop(server)
    server = null
    const records = bulkRecords(dataDir, created.id)
    if (records !== photos) throw new Error(`${records} identifications with the job's bulkJobId for ${photos} photos`)
    // The pipeline alone again, after the jobs: the mean of before and after (a shared machine's load drifts).
    const again = await pipelineBaseline(archive, ctx.pin)
    log(`  the image pipeline alone again: ${again.cpuMs.toFixed(0)} ms CPU per photo, p50 ${again.wallMs.toFixed(0)} ms wall`)
    const baseline = { cpuMs: (first.cpuMs + again.cpuMs) / 2, wallMs: (first.wallMs + again.wallMs) / 2 }

    const malloc = Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_')).map(([k, v]) => `${k}=${v}`)
    const allocator = malloc.length === 0 ? 'glibc malloc\'s defaults, as `npm start`' : `${malloc.join(' ')} from the environment (the Docker image sets MALLOC_ARENA_MAX=2)`
    if (peakRise >= RSS_TARGET_BYTES && malloc.length === 0) {
      notes.push('Bulk: the RSS above idle while preparing is mostly glibc malloc keeping the image buffers libvips and libjpeg free ' +
        '(a progressive JPEG\'s whole-image coefficient buffers above all) in its per-thread arenas, as for identifyVehicle on the Azure backend: ' +
        'the Docker image runs with MALLOC_ARENA_MAX=2 for this; run `MALLOC_ARENA_MAX=2 npm run bench -- --only bulk` to measure that.')
    }
    rows.push({
      scenario: 'bulk',
      what: `peak RSS above idle while receiving and preparing ${photos.toLocaleString('en')} photos (a ${mib(archive.bytes)} ZIP); ${allocator}`,
      result: `+${mib(peakRise)} (receiving +${mib(receivingPeak)}, preparing +${mib(preparingPeak)}; ${reset ? 'VmHWM reset at idle' : 'largest VmRSS sampled'}; idle ${mib(idle)})`,
      target: '< 200 MB (191 MiB)',
      met: peakRise < RSS_TARGET_BYTES
    })
    const prepareRatio = prepareCpuMs / baseline.cpuMs
    rows.push({
      scenario: 'bulk',
      what: `preparation, CPU ms per photo: the job (server's threads while PREPARING) ÷ the pipeline alone (same photos, one core, detail ${PREPARED_DETAIL})`,
      result: `${prepareRatio.toFixed(2)}× (${prepareCpuMs.toFixed(0)} vs ${baseline.cpuMs.toFixed(0)} ms: before ${first.cpuMs.toFixed(0)}, after ${again.cpuMs.toFixed(0)}; wall ${prepareWallMs.toFixed(0)} ms per photo at ` +
        `BULK_PREPARE_CONCURRENCY ${PREPARE_CONCURRENCY}, the pipeline's p50 ${baseline.wallMs.toFixed(0)} ms on one core)`,
      target: `≤ ${PREPARE_TARGET}×`,
      met: prepareRatio <= PREPARE_TARGET
    })
    const baseP99 = (before.p99 + after.p99) / 2
    const valid = loadFailures(during) === 0 && loadFailures(before) === 0 && loadFailures(after) === 0
    const window = during.durationSec
    const covered = activeSec >= 0.9 * window
    const p99Ratio = during.p99 / baseP99
    rows.push({
      scenario: 'bulk',
      what: `interactive p99 (c=${INTERACTIVE_CONNECTIONS}, ${ctx.photo.name}, another caller) while a job is worked ÷ without a job`,
      result: `${p99Ratio.toFixed(2)}× (${during.p99} ms vs ${baseP99.toFixed(0)} ms: before ${before.p99}, after ${after.p99}; p50 ${during.p50} vs ${before.p50}/${after.p50} ms; ` +
        `the job ${seen.join(' → ')}${covered ? '' : `, active only ${Math.max(0, activeSec).toFixed(1)} s of the ${window.toFixed(0)} s: not judged`}${valid ? '' : '; WITH FAILURES'})`,
      target: `≤ ${P99_TARGET}×`,
      met: covered ? valid && p99Ratio <= P99_TARGET : null
    })
    rows.push({
      scenario: 'bulk',
      what: 'end to end: received, prepared, answered (ONLINE, simulated backend), every item checked',
      result: `upload ${((t1 - t0) / 1000).toFixed(1)} s (${(archive.bytes / MiB / ((t1 - t0) / 1000)).toFixed(0)} MiB/s, ${((cpu1 - cpu0) * 1000 / photos).toFixed(1)} ms CPU per photo); ` +
        `preparation ${((preparedAt - t1) / 1000).toFixed(0)} s; answers ${((completedAt - preparedAt) / 1000).toFixed(0)} s; ${records} records with the bulkJobId`,
      target: '(for comparison)',
      met: null
    })
    if (!reset) notes.push('Bulk: /proc/<pid>/clear_refs could not reset VmHWM; the RSS figure is the largest VmRSS sampled every 100 ms (it may miss a short peak).')

    const section = `### Bulk jobs: a ${photos.toLocaleString('en')}-photo archive (\`--only bulk\`)\n\n` +
      `bench/bulk.ts. ${photos.toLocaleString('en')} synthetic phone photos (bench/lib/bulk-corpus.ts): ${Math.min(photos, BASES)} base JPEGs of 12 MP ` +
      '(4032×3024 stored with EXIF orientation 1, 3, 6 or 8, and 3024×4032; camera and GPS tags; baseline and progressive; seeded noise at quality 80–88), ' +
      `each photo a base with its own JPEG comment segment (its own sha256), ${(archive.photoBytes / photos / 1e6).toFixed(2)} MB on average, in a stored ZIP of ` +
      `${mib(archive.bytes)} written by streaming. Uploaded with createBulkJob (one multipart request, the archive streamed from disk) to ours with ` +
      '`npm start`\'s defaults: the simulated backend (so the job runs ONLINE), history on SQLite in a fresh DATA_DIR, every BULK_* and VISION_* variable at ' +
      'its default (BULK_PREPARE_CONCURRENCY 1, BULK_MAX_CONCURRENCY ⌊16 ÷ 4⌋); as in the other scenarios the rate limits are lifted and the result cache is off; ' +
      'AUTH_MODE=apikey with two keys (bulk jobs need a signed-in caller): the job\'s caller and the interactive one; ' +
      'the server is not pinned. **RSS**: VmHWM reset to the idle RSS (/proc/<pid>/clear_refs) after the interactive warm-up and the first load run, read once ' +
      'receiving ends, reset again, and read once preparation ends (the job RUNNING). **Preparation**: the server\'s CPU time (all threads, /proc) from the upload\'s answer to the job RUNNING, ÷ the photos; ' +
      'the pipeline alone: bench/pipeline.ts (scenario 3\'s child, one core, UV_THREADPOOL_SIZE=1, sharp.concurrency(1)) on the same base photos at detail ' +
      `${PREPARED_DETAIL} (what the default VISION_IMAGE_DETAIL=adaptive prepares a job's photos at), taken in turn as a job takes them, ${PIPELINE_RUNS} rounds ` +
      'after a warm-up round, CPU time per run (inspection excluded, as in scenario 3: ~3 ms), before the jobs and after them (their mean), ' +
      'weighed by photos per base. **Interactive p99**: autocannon, ' +
      `${INTERACTIVE_CONNECTIONS} connections, ${ctx.duration} s per run, the headline's photo, another caller (its own key): before the job; while a second ` +
      'job of the same archive is worked, from its upload\'s answer (with the simulated backend an ONLINE job answers ~1 ms a photo: the window falls in its ' +
      'preparation, the part that loads the server; cancelled after the window); and after. ' +
      'The first job\'s items are all checked (SUCCEEDED, an identification of this job with the photo\'s sha256 and the simulated answer) and the SQLite file must hold ' +
      'one identification per photo with its bulkJobId.\n\n' +
      table(['phase', 'wall', 'server CPU', 'per photo'], [
        ['receiving (upload + listing)', `${((t1 - t0) / 1000).toFixed(1)} s`, `${(cpu1 - cpu0).toFixed(1)} s`, `${((cpu1 - cpu0) * 1000 / photos).toFixed(1)} ms CPU`],
        ['preparing', `${((preparedAt - t1) / 1000).toFixed(1)} s`, `${(preparedCpu - cpu1).toFixed(1)} s`, `${prepareCpuMs.toFixed(0)} ms CPU, ${prepareWallMs.toFixed(0)} ms wall`],
        ['answering (ONLINE) and completing', `${((completedAt - preparedAt) / 1000).toFixed(1)} s`, '', ''],
        ['the pipeline alone (one core)', '', '', `${baseline.cpuMs.toFixed(0)} ms CPU, p50 ${baseline.wallMs.toFixed(0)} ms wall`]
      ])
    return { rows, section, notes }
  } finally {
    await watch?.stop()
    if (server !== null) await stop(server)
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** --quick (CI): a 20-photo archive received, prepared and answered, every item checked; no timing judged. Throws on a problem. */
export async function quickBulk (log: (line: string) => void): Promise<void> {
  const archive = await bulkArchive(20, 4)
  const dataDir = mkdtempSync(join(os.tmpdir(), 'agrivision-bench-bulk-quick-'))
  const keys = apiKeys()
  const server = await startServer('ours-bulk-quick', 'peers/ours.ts', { env: { ...keys.env, BENCH_VISION: 'simulated', BENCH_DATA_DIR: dataDir } })
  let watch: JobWatch | null = null
  try {
    const url = `http://127.0.0.1:${server.port}/graphql`
    const created = await uploadArchive(url, keys.bulk, archive)
    watch = new JobWatch(url, keys.bulk, created.id, () => {})
    const { counts } = await watch.until(['COMPLETED'], 60_000)
    if (counts.total !== archive.photos || counts.succeeded !== archive.photos) throw new Error(`bulk: the job COMPLETED with ${JSON.stringify(counts)}`)
    await checkItems(url, keys.bulk, created.id, archive)
    await watch.stop()
    watch = null
    await stop(server)
    const records = bulkRecords(dataDir, created.id)
    if (records !== archive.photos) throw new Error(`bulk: ${records} records with the job's bulkJobId for ${archive.photos} photos`)
    log(`quick: bulk: a ${archive.photos}-photo archive (12 MP) received, prepared and answered ONLINE, every item checked, ${records} records`)
  } finally {
    await watch?.stop()
    await stop(server)
    rmSync(dataDir, { recursive: true, force: true })
  }
}
