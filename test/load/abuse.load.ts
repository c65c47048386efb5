// Issue 7's targets against the real server process: every query up to the body limit is parsed and
// validated in under 50 ms while /health/live keeps answering; 100 distinct maximum-size queries
// raise RSS by under 100 MB under a 512 MB heap cap; a caller stalling or dripping uploads holds no
// vision slot, so another caller is answered at once (issue 17's target: within 5 s, with 2 slots and a
// queue of 2), while the stalls are refused past the caller's byte budget (429) and cut off (408).
import t from 'tap'
import http from 'node:http'
import { FakeAzure } from '../support/fake-azure.ts'
import { identifyBody } from '../support/multipart.ts'
import { connect, postHead, write } from '../support/raw-http.ts'
import * as images from '../support/images.ts'
import { newApiKey } from '../../src/callers/api-keys.ts'
import { byLabels, get, identify, mb, rssBytes, scrape, sleep, startServer, stopServer, type ServerProcess } from './support.ts'

const BODY_LIMIT = 100 * 1024

async function post (server: ServerProcess, body: string): Promise<{ status: number, ms: number, code?: string }> {
  const started = performance.now()
  return await new Promise(resolve => {
    const req = http.request(`${server.origin}/graphql`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        let code: string | undefined
        try { code = JSON.parse(Buffer.concat(chunks).toString()).errors?.[0]?.extensions?.code } catch {}
        resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, code })
      })
    })
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }))
    req.end(body)
  })
}

/** `{ "query": … }` padded with long alias names towards `bytes`: as much text as the limits let through. */
function aliasQuery (seed: number, fields: number, bytes: number): string {
  const nameLength = Math.max(8, Math.floor((bytes - 64) / fields) - 14)
  const selections = Array.from({ length: fields }, (_, i) => `${`a${seed}_${i}_`.padEnd(nameLength, 'x')}: __typename`)
  return JSON.stringify({ query: `{ ${selections.join(' ')} }` })
}

function doublingChain (levels: number): string {
  let text = 'fragment F40 on VisionStatus { ready }\n'
  for (let i = levels - 1; i >= 0; i--) text += `fragment F${i} on VisionStatus { ...F${i + 1} ...F${i + 1} }\n`
  return text.replace('F40', `F${levels}`)
}

/** The worst shapes we know, each near the body limit or the token limit. */
function worstQueries (): Record<string, string> {
  return {
    'fragment chain 2^40': JSON.stringify({ query: `{ vision { ...F0 } } ${doublingChain(40)}` }),
    '499 long aliases (valid, ~100 KB)': aliasQuery(0, 499, BODY_LIMIT - 200),
    '1,990 tokens of unknown fields': JSON.stringify({ query: `{ ${Array.from({ length: 660 }, (_, i) => `n${i}: nope${i}`).join(' ')} }` }),
    'past the token limit': JSON.stringify({ query: `{ ${'__typename '.repeat(9000)}}` }),
    'nested inline fragments': JSON.stringify({ query: `{ ${'... on Query { '.repeat(400)}__typename${' }'.repeat(400)} }` }),
    'nested lists in a default value': JSON.stringify({ query: `query Q($a: [Int] = ${'['.repeat(990)}${']'.repeat(990)}) { __typename }` }),
    'one long string': JSON.stringify({ query: `query Q($a: String = "${'x'.repeat(BODY_LIMIT - 200)}") { __typename }` }),
    'same field 499 times': JSON.stringify({ query: `{ ${'vision { ready } '.repeat(166)}}` })
  }
}

t.test('query cost: each worst shape answered within 50 ms; /health/live never waits behind them', { timeout: 120_000 }, async t => {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  const server = await startServer(fake, { GRAPHQL_RATE_LIMIT_PER_MINUTE: '0' })
  t.teardown(() => stopServer(server))

  for (const [shape, body] of Object.entries(worstQueries())) {
    t.ok(body.length <= BODY_LIMIT, `${shape}: ${body.length} bytes`)
    // The fastest of 5 tries: the query's own cost, without this machine's scheduling noise.
    const tries = []
    for (let i = 0; i < 5; i++) tries.push(await post(server, body))
    const best = Math.min(...tries.map(r => r.ms))
    t.ok(tries.every(r => r.status === 200 || r.status === 400), `${shape}: ${tries.map(r => `${r.status} ${r.code ?? ''}`)[0]}`)
    t.ok(best < 50, `${shape}: answered in ${best.toFixed(1)} ms (fastest of 5)`)
  }

  // An attacker sends the worst shapes back to back on 4 connections; a probe asks for liveness meanwhile.
  const bodies = Object.values(worstQueries())
  await scrape(server.origin) // resets the event-loop delay histogram
  let stop = false
  const attackers = Array.from({ length: 4 }, async (_, a) => {
    let sent = 0
    // eslint-disable-next-line no-unmodified-loop-condition -- set by the probe loop below
    while (!stop) { await post(server, bodies[(a + sent++) % bodies.length] as string) }
    return sent
  })
  const live: number[] = []
  const until = performance.now() + 5000
  while (performance.now() < until) {
    const started = performance.now()
    const res = await get(server.origin, '/health/live', 2000)
    live.push(res.status === 200 ? performance.now() - started : Infinity)
    await sleep(20)
  }
  stop = true
  const sent = (await Promise.all(attackers)).reduce((a, b) => a + b, 0)
  live.sort((a, b) => a - b)
  const p99 = live[Math.floor(live.length * 0.99)] as number
  const loopMax = (byLabels(await scrape(server.origin), 'nodejs_eventloop_lag_max_seconds').get('') ?? NaN) * 1000
  t.comment(`${sent} attack queries in 5 s; /health/live: ${live.length} probes, median ${live[live.length >> 1]?.toFixed(1)} ms, ` +
    `p99 ${p99.toFixed(1)} ms, max ${live.at(-1)?.toFixed(1)} ms; longest event-loop block ${loopMax.toFixed(1)} ms`)
  // Four attackers keep the one thread busy, so a probe shares it with their queued requests; what
  // matters is that no single query holds the loop (it was 4 s for one 1 KB query before).
  t.ok(loopMax < 100, `no request blocked the event loop for 100 ms (longest ${loopMax.toFixed(1)} ms, GC and jit compiles included)`)
  t.ok(live.at(-1) as number < 500, `no liveness probe waited half a second (p99 ${p99.toFixed(1)} ms)`)
})

t.test('parsed-query memory: 100 distinct maximum-size queries under a 512 MB heap cap', { timeout: 120_000 }, async t => {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  const server = await startServer(fake, { GRAPHQL_RATE_LIMIT_PER_MINUTE: '0', NODE_OPTIONS: '--max-old-space-size=512' })
  t.teardown(() => stopServer(server))
  for (let i = 0; i < 20; i++) await post(server, JSON.stringify({ query: '{ vision { ready } }' }))
  const before = rssBytes(server.pid)
  let peak = before
  const outcomes = new Map<string, number>()
  for (let i = 0; i < 100; i++) {
    // Valid ones (cached as documents) and invalid ones (cached with their errors), each distinct.
    const body = i % 2 === 0
      ? aliasQuery(i + 1, 499, BODY_LIMIT - 200)
      : JSON.stringify({ query: `{ ${Array.from({ length: 660 }, (_, k) => `n${i}_${k}: nope${k}`).join(' ')} }` })
    const res = await post(server, body)
    outcomes.set(`${res.status} ${res.code ?? 'OK'}`, (outcomes.get(`${res.status} ${res.code ?? 'OK'}`) ?? 0) + 1)
    peak = Math.max(peak, rssBytes(server.pid))
  }
  const after = rssBytes(server.pid)
  t.comment(`outcomes ${JSON.stringify(Object.fromEntries(outcomes))}; RSS before ${mb(before)}, peak ${mb(peak)}, after ${mb(after)}`)
  t.equal(server.child.exitCode, null, 'still running')
  t.equal((await get(server.origin, '/health/live')).status, 200)
  t.ok(peak - before < 100 * 1024 * 1024, `RSS grew by ${mb(peak - before)} (target: under 100 MB)`)
})

t.test('a caller stalling or dripping uploads never delays another caller: 2 slots, a queue of 2, the default idle timeout', { timeout: 120_000 }, async t => {
  const TARGET_MS = 5000
  const attacker = newApiKey('attacker')
  const farmer = newApiKey('farmer')
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  fake.chatFault = () => ({ kind: 'ok', latencyMs: 50 })
  const server = await startServer(fake, {
    AUTH_MODE: 'apikey',
    API_KEY_HASHES: `${attacker.entry},${farmer.entry}`,
    RATE_LIMIT_PER_MINUTE: '0', // the attacker reopens its stalls as fast as they are refused
    VISION_MAX_CONCURRENCY: '2',
    VISION_QUEUE_SIZE: '2',
    UPLOAD_BYTES_IN_FLIGHT_PER_CALLER: String(512 * 1024) // 8 uploads (each counted for at least 64 KiB)
  })
  t.teardown(() => stopServer(server))
  const body = await identifyBody(await images.jpeg(640, 480))

  // The attacker keeps 12 uploads stalled half-way (every third one dripping a byte a second after the
  // half), reopening each one as soon as it is refused.
  let stop = false
  const refusals = new Map<number, number>()
  const stalls = Array.from({ length: 12 }, async (_, n) => {
    // eslint-disable-next-line no-unmodified-loop-condition -- set once the farmer is done
    while (!stop) {
      const socket = await connect(server.port)
      const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
      socket.on('data', chunk => {
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1])
        if (status) refusals.set(status, (refusals.get(status) ?? 0) + 1)
      })
      await write(socket, postHead('/graphql', { ...body.headers, 'x-api-key': attacker.key }, body.payload.length))
      let sent = body.payload.length >> 1
      await write(socket, body.payload.subarray(0, sent))
      const drip = n % 3 === 0 ? setInterval(() => { void write(socket, body.payload.subarray(sent, ++sent)) }, 1000) : undefined
      await Promise.race([closed, sleep(20_000)])
      clearInterval(drip)
      socket.destroy()
      await sleep(10)
    }
  })
  await sleep(500)
  const latencies: number[] = []
  const codes = new Map<string, number>()
  const until = performance.now() + 12_000 // long enough for stalls to be cut off (5 s) and reopened
  while (performance.now() < until) {
    const outcome = await identify(server.origin, { ...body, headers: { ...body.headers, 'x-api-key': farmer.key } }, { timeoutMs: 30_000 })
    latencies.push(outcome.ms)
    codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1)
    await sleep(100)
  }
  stop = true
  await Promise.all(stalls)
  latencies.sort((a, b) => a - b)
  t.comment(`farmer: ${JSON.stringify(Object.fromEntries(codes))}, median ${latencies[latencies.length >> 1]?.toFixed(0)} ms, ` +
    `max ${latencies.at(-1)?.toFixed(0)} ms; attacker refused: ${JSON.stringify(Object.fromEntries(refusals))}`)
  t.same(Object.fromEntries(codes), { OK: latencies.length }, `every farmer upload answered (${latencies.length})`)
  t.ok((latencies.at(-1) as number) < TARGET_MS, `the slowest farmer upload took ${latencies.at(-1)?.toFixed(0)} ms (target ${TARGET_MS} ms)`)
  t.ok((refusals.get(429) ?? 0) > 0, 'stalls past the attacker\'s byte budget are refused at once (429)')
  t.ok((refusals.get(408) ?? 0) > 0, 'stalled and dripping uploads are cut off (408)')
})
