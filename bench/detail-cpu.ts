// CPU per identification by detail (issue 21), in-process: `node bench/detail-cpu.ts [--backend azure|simulated]
// [--requests N] [--details auto,high,adaptive] [--rounds R]`. The app is built here (history on SQLite in a
// temporary directory, thumbnails always made, the result cache off, logs silent) and fed prebuilt multipart
// requests through app.inject at concurrency 8; the figure is this process's CPU time (all threads: libvips' and
// the SQLite writer's included, process.cpuUsage) over the requests, divided by their number. CPU time, not wall
// time: other processes slow a run, they do not add to its CPU time (much: shared caches and SMT siblings, ±10 %).
//   azure: the real Azure backend against the fake Azure in its own process (bench/fake-azure.ts with the adaptive
//          corpus: answers by photo and detail after 300 ms); the corpus's photos, 4032×3024 to 400×250.
//   simulated: `npm start`'s backend and issue 19's headline photo (800×600, ~100 KB JPEG), the same every request.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { createVision } from '../src/vision/index.ts'
import { corpus, corpusFiles } from './lib/adaptive-corpus.ts'
import { startFakeAzure, stop, type FakeChild } from './lib/children.ts'
import { benchImage } from './lib/images.ts'
import { PREFLIGHT_HEADERS } from './lib/operation.ts'

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'simulated' },
    requests: { type: 'string', default: '200' },
    details: { type: 'string', default: 'auto,high,adaptive' },
    rounds: { type: 'string', default: '3' }
  }
})
const backend = values.backend === 'azure' ? 'azure' : 'simulated'
const requests = Number(values.requests)
const rounds = Number(values.rounds)
const details = (values.details ?? '').split(',').map(d => d.trim().toUpperCase()).filter(d => d !== '')
const CONCURRENCY = 8
/** The fake's answer latency (azure): ADAPTIVE's HIGH image is made while the LOW look is out, as in real use. */
const LATENCY_MS = 300

const OPERATION = `mutation Identify($image: Upload!, $detail: ImageDetail) {
  identifyVehicle(image: $image, detail: $detail) { id looks detailUsed image { sentBytes sentWidth sentHeight } }
}`

async function body (file: Buffer, detail: string): Promise<{ payload: Buffer, headers: Record<string, string> }> {
  const form = new FormData()
  form.append('operations', JSON.stringify({ query: OPERATION, variables: { image: null, detail } }))
  form.append('map', JSON.stringify({ 0: ['variables.image'] }))
  form.append('0', new Blob([new Uint8Array(file)], { type: 'image/jpeg' }), 'photo.jpg')
  const response = new Response(form)
  return {
    payload: Buffer.from(await response.arrayBuffer()),
    headers: { ...PREFLIGHT_HEADERS, 'content-type': response.headers.get('content-type') as string }
  }
}

let fake: FakeChild | undefined
const dataDir = mkdtempSync(join(tmpdir(), 'agrivision-detail-cpu-'))
try {
  let env: Record<string, string> = {}
  let photos: Buffer[]
  if (backend === 'azure') {
    fake = await startFakeAzure(LATENCY_MS, { BENCH_FAKE_ANSWERS: 'adaptive' })
    // The managed identity's environment (IDENTITY_ENDPOINT...): DefaultAzureCredential reads process.env.
    Object.assign(process.env, fake.env)
    env = { AZURE_OPENAI_ENDPOINT: fake.origin, AZURE_OPENAI_DEPLOYMENT: 'gpt-4o-vision' }
    photos = (await corpusFiles(corpus())).map(f => readFileSync(f.path))
  } else {
    photos = [readFileSync((await benchImage('photo')).path)]
  }
  const config = loadConfig({
    ...env,
    ALLOW_ANONYMOUS: 'true',
    RATE_LIMIT_PER_MINUTE: '0',
    GRAPHQL_RATE_LIMIT_PER_MINUTE: '0',
    VISION_MAX_CONCURRENCY_PER_CALLER: '1024',
    VISION_MAX_CONCURRENCY: '64',
    RESULT_CACHE_TTL_S: '0',
    THUMBNAIL_SKIP_ABOVE_UTILISATION: '1',
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir
  })
  const log = pino({ level: 'silent' })
  const vision = createVision(config, log)
  const app = await buildApp({ config, vision, logger: log })
  await app.ready()

  const bodies = new Map<string, Array<{ payload: Buffer, headers: Record<string, string> }>>()
  for (const detail of details) bodies.set(detail, await Promise.all(photos.map(async p => await body(p, detail))))
  const looks = new Map<string, number>()

  const run = async (detail: string, n: number): Promise<number> => {
    const list = bodies.get(detail) ?? []
    let next = 0
    const cpu0 = process.cpuUsage()
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        const { payload, headers } = list[next++ % list.length] as { payload: Buffer, headers: Record<string, string> }
        const response = await app.inject({ method: 'POST', url: '/graphql', payload, headers })
        const it = response.json()?.data?.identifyVehicle
        if (it == null) throw new Error(`${detail}: ${response.body.slice(0, 300)}`)
        looks.set(detail, (looks.get(detail) ?? 0) + it.looks)
      }
    }))
    // The thumbnails of these requests are made after their answers: wait for the queue to drain.
    while ((app.thumbnails?.maker.waiting ?? 0) > 0) await new Promise(resolve => setTimeout(resolve, 5))
    await new Promise(resolve => setTimeout(resolve, 50))
    const cpu = process.cpuUsage(cpu0)
    return (cpu.user + cpu.system) / 1000 / n
  }

  for (const detail of details) await run(detail, Math.min(requests, 20)) // warm-up
  const results = new Map<string, number[]>(details.map(d => [d, []]))
  for (let round = 0; round < rounds; round++) {
    looks.clear()
    for (const detail of round % 2 === 0 ? details : [...details].reverse()) results.get(detail)?.push(await run(detail, requests))
    process.stdout.write(`round ${round + 1}: ${details.map(d => `${d} ${(results.get(d)?.at(-1) ?? 0).toFixed(2)} ms (looks ${((looks.get(d) ?? 0) / requests).toFixed(2)})`).join(', ')}\n`)
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
  process.stdout.write(`${backend}, ${requests} identifications per pass, ${rounds} rounds, CPU ms per identification, median (min–max):\n`)
  for (const detail of details) {
    const xs = results.get(detail) ?? []
    process.stdout.write(`  ${detail}: ${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})\n`)
  }
  await app.close()
} finally {
  if (fake !== undefined) await stop(fake)
  rmSync(dataDir, { recursive: true, force: true })
}
