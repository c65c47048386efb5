// The farm-management dashboard's whole path, end to end, through the real server process (`node src/server.ts`)
// and real HTTP against the loopback fake Azure, on one history database: run by test/dashboard-sqlite.e2e.test.ts
// (embedded SQLite under DATA_DIR) and test/dashboard-postgres.e2e.test.ts (PostgreSQL by DATABASE_URL).
// Identify (structured, response_format checked by the fake), list, page, filter, delete, roles, Idempotency-Key
// (replay, 409, 422), the result cache, usage, a graceful restart losing nothing, and (PostgreSQL) an outage.
import type { Test } from 'tap'
import { newApiKey, type NewApiKey } from '../../src/callers/api-keys.ts'
import type { VisionAnswer } from '../../src/vision/answer-schema.ts'
import { FakeAzure, imageFromChat } from './fake-azure.ts'
import { identifyBody, type IdentifyVariables } from './multipart.ts'
import * as images from './images.ts'
import { get, startServer, waitFor } from '../load/support.ts'
import { stopServer, type ServerProcess } from './server-process.ts'

export interface ScenarioDatabase {
  /** What the server is given to reach the database: DATA_DIR (SQLite) or DATABASE_URL (PostgreSQL). */
  env: Record<string, string>
  /** Takes the database away and brings it back (the same data); absent where that does not apply. */
  outage?: { pause: () => Promise<void>, resume: () => Promise<void> }
}

interface Reply {
  status: number
  headers: Headers
  body: any
}

type Vehicle = VisionAnswer['vehicles'][number]

const vehicle = (category: Vehicle['category'], kind: Vehicle['kind'], make: string | null, model: string | null): Vehicle =>
  ({ category, kind, make, model, confidence: 'HIGH', evidence: [`${make ?? 'unbadged'} ${model ?? ''}`.trim()] })

const answerOf = (...vehicles: Vehicle[]): VisionAnswer =>
  ({ answer: vehicles.map(v => `${v.make ?? '?'} ${v.model ?? '?'}`).join(', '), vehicles, imageQuality: 'CLEAR' })

const NODE = 'id createdAt callerId cached answer vehicles { category kind make model confidence evidence } usage { promptTokens completionTokens }'
const LIST = `query ($first: Int, $after: String, $filter: IdentificationFilter) {
  identifications(first: $first, after: $after, filter: $filter) {
    edges { cursor node { ${NODE} } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`
const ONE = `query ($id: ID!) { identification(id: $id) { ${NODE} } }`
const DELETE = 'mutation ($id: ID!) { deleteIdentification(id: $id) }'
const USAGE = `query ($from: DateTime!, $to: DateTime!, $groupBy: UsageGrouping) {
  usage(from: $from, to: $to, groupBy: $groupBy) { key identifications failed cached promptTokens completionTokens estimatedCost }
}`

export async function dashboardScenario (t: Test, database: ScenarioDatabase): Promise<void> {
  const alice = newApiKey('alice')
  const bob = newApiKey('bob')
  const dashboard = newApiKey('dashboard')
  const keys = [alice, bob, dashboard]

  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  // Each call answers with `next` (set before each identification), after `latencyMs`.
  let next: VisionAnswer = answerOf(vehicle('TRACTOR', 'MACHINE', 'John Deere', '6R 250'))
  let latencyMs = 0
  fake.chatFault = () => ({ kind: 'ok', structured: next, latencyMs })

  const env = {
    AUTH_MODE: 'apikey',
    API_KEY_HASHES: [alice.entry, bob.entry, `${dashboard.entry}:VehicleIdentification.ReadAll`].join(','),
    RESULT_CACHE_TTL_S: '3600',
    LOG_LEVEL: 'info',
    SHUTDOWN_GRACE_MS: '10000',
    ...database.env
  }
  const servers: ServerProcess[] = []
  const start = async (): Promise<ServerProcess> => {
    // Slow to be ready when the machine is busy (two suites at once): Node, sharp, the database, the first token.
    const server = await startServer(fake, env, { readyTimeoutMs: 45_000 })
    servers.push(server)
    t.teardown(async () => {
      if (!t.passing()) t.comment(`server ${server.pid} (exit ${server.child.exitCode ?? server.child.signalCode ?? 'none'}) output:\n${server.output().slice(-6000)}`)
      await stopServer(server)
    })
    return server
  }
  let server = await start()

  const gql = async (who: NewApiKey | null, query: string, variables: Record<string, unknown> = {}): Promise<Reply> => {
    const res = await fetch(`${server.origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(who === null ? {} : { 'x-api-key': who.key }) },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(15_000)
    })
    return { status: res.status, headers: res.headers, body: await res.json() }
  }
  const identify = async (
    who: NewApiKey, file: Buffer, { variables, key }: { variables?: IdentifyVariables, key?: string } = {}
  ): Promise<Reply> => {
    const { payload, headers } = await identifyBody(file, variables)
    const res = await fetch(`${server.origin}/graphql`, {
      method: 'POST',
      headers: { ...headers, 'x-api-key': who.key, ...(key === undefined ? {} : { 'idempotency-key': key }) },
      body: new Uint8Array(payload),
      signal: AbortSignal.timeout(30_000)
    })
    return { status: res.status, headers: res.headers, body: await res.json() }
  }
  /** A successful identification: its `identifyVehicle`. */
  const identified = async (who: NewApiKey, file: Buffer, answer: VisionAnswer, variables?: IdentifyVariables): Promise<any> => {
    next = answer
    const res = await identify(who, file, { variables })
    t.equal(res.status, 200, 'identifyVehicle: HTTP 200')
    t.notOk(res.body.errors, 'identifyVehicle: no errors')
    const identification = res.body.data?.identifyVehicle
    // Two identifications never share a millisecond, so "newest first" is the reverse of the order made here.
    await new Promise(resolve => setTimeout(resolve, 5))
    return identification
  }
  const ids = (reply: Reply): string[] => reply.body.data.identifications.edges.map((edge: any) => edge.node.id)
  const list = async (who: NewApiKey, variables: Record<string, unknown> = {}): Promise<Reply> =>
    await gql(who, LIST, { first: 100, ...variables })
  const chats = (): number => fake.chatRequests.length

  /** Every successful identification made (and not deleted), by caller: what history must list. */
  const made = new Map<string, string[]>([['alice', []], ['bob', []]])
  let latest = ''
  const remember = (caller: string, identification: { id: string }): void => {
    made.get(caller)!.push(identification.id)
    latest = identification.id
  }
  // Records are written off the request path, one writer, in order: once the latest is listed, all before it are written.
  const written = async (): Promise<void> => {
    const listed = await waitFor(async () => (await gql(dashboard, ONE, { id: latest })).body.data?.identification?.id === latest, 10_000)
    t.ok(listed, 'the latest identification is in history')
  }
  const uploads: Buffer[] = []

  // 1. Identify: structured vehicles come back; every model call asked for structured output.
  const photos = [
    await images.jpeg(640, 480), await images.png(320, 240), await images.webp(300, 200), await images.gif(200, 150),
    // 800×500, not 4:3: these photos are one flat colour, and at ADAPTIVE's first look (512 px) a flat 800×600 is
    // byte for byte the 640×480's LOW image, which the result cache rightly takes for the same question.
    await images.jpegWithGps(800, 500), await images.jpeg(400, 300), await images.jpeg(401, 300)
  ]
  uploads.push(...photos)
  const aliceAnswers = [
    answerOf(vehicle('TRACTOR', 'MACHINE', 'John Deere', '6R 250')),
    answerOf(vehicle('COMBINE_HARVESTER', 'MACHINE', 'CLAAS', 'Lexion 8900')),
    answerOf(vehicle('TRACTOR', 'MACHINE', 'Fendt', '942 Vario')),
    answerOf(vehicle('TRAILED_SPRAYER', 'IMPLEMENT', 'Amazone', 'UX 5201')),
    answerOf(vehicle('TRACTOR', 'MACHINE', 'John Deere', '8R 410'), vehicle('PLANTER_SEEDER', 'IMPLEMENT', 'Väderstad', 'Tempo'))
  ]
  const aliceMade: any[] = []
  for (const [i, answer] of aliceAnswers.entries()) {
    const identification = await identified(alice, photos[i] as Buffer, answer, { language: 'en' })
    t.same(identification.vehicles, answer.vehicles, `alice's photo ${i + 1}: the structured vehicles, field by field`)
    t.equal(identification.cached, false)
    t.equal(identification.callerId, 'alice')
    aliceMade.push(identification)
    remember('alice', identification)
  }
  const bobAnswer = answerOf(vehicle('TRACTOR', 'MACHINE', 'John Deere', '6R 150'))
  const bobMade = [await identified(bob, photos[5] as Buffer, bobAnswer, { language: 'de' })]
  t.equal(bobMade[0].callerId, 'bob')
  remember('bob', bobMade[0])
  t.equal(chats(), 6, 'one model call per identification')
  t.equal(fake.badResponseFormats, 0, 'the fake refused no request for its response_format')
  for (const [i, record] of fake.chatRequests.entries()) {
    const format = record.body.response_format
    t.equal(format?.type, 'json_schema', `call ${i + 1}: response_format json_schema`)
    t.equal(format?.json_schema?.strict, true, `call ${i + 1}: strict`)
  }

  // A failed identification (not an image: no model call): counted by usage, not listed.
  const failed = await identify(alice, images.text)
  t.equal(failed.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT', 'a text file is refused')
  t.equal(chats(), 6, 'without a model call')

  // Who may do what: no key, a ReadAll-only key identifying.
  t.equal((await gql(null, LIST)).status, 401, 'no API key: 401')
  const dashboardIdentifies = await identify(dashboard, photos[6] as Buffer)
  t.equal(dashboardIdentifies.body.errors?.[0]?.extensions.code, 'FORBIDDEN', 'the dashboard (ReadAll only) may not identify')
  t.equal(chats(), 6)

  // 2. List, page, filter, one by id, who sees what.
  await written()
  const newestFirst = aliceMade.map(identification => identification.id).reverse()
  const own = await list(alice)
  t.equal(own.status, 200)
  t.same(ids(own), newestFirst, 'alice lists her identifications, newest first (not the failed one, not bob\'s)')
  t.same(own.body.data.identifications.edges[0].node.vehicles, aliceAnswers[4]!.vehicles, 'with the structured vehicles as filed')
  const { promptTokens, completionTokens } = aliceMade[4].usage
  t.same(own.body.data.identifications.edges[0].node.usage, { promptTokens, completionTokens }, 'and the usage the answer reported')

  const paged: string[] = []
  let after: string | null = null
  let pages = 0
  for (;;) {
    const page: Reply = await list(alice, { first: 2, after })
    const connection = page.body.data.identifications
    paged.push(...connection.edges.map((edge: any) => edge.node.id))
    pages++
    t.ok(connection.edges.length <= 2, `page ${pages}: at most 2`)
    t.equal(connection.pageInfo.startCursor, connection.edges[0]?.cursor ?? null, `page ${pages}: startCursor is its first edge's`)
    if (!connection.pageInfo.hasNextPage) break
    after = connection.pageInfo.endCursor
    if (pages > 10) break
  }
  t.equal(pages, 3, 'five identifications, two a page: three pages')
  t.same(paged, newestFirst, 'paging with endCursor visits every one once, in order')

  t.same(ids(await list(alice, { filter: { category: 'TRACTOR' } })), [newestFirst[0], newestFirst[2], newestFirst[4]], 'filter by category')
  t.same(ids(await list(alice, { filter: { category: 'PLANTER_SEEDER' } })), [newestFirst[0]], 'by a category seen second in a photo')
  t.same(ids(await list(alice, { filter: { make: 'john deere' } })), [newestFirst[0], newestFirst[4]], 'filter by make, case-insensitive')
  t.same(ids(await list(alice, { filter: { category: 'TRACTOR', make: 'Fendt' } })), [newestFirst[2]], 'both at once')
  t.same(ids(await list(alice, { filter: { from: aliceMade[1].createdAt, to: aliceMade[3].createdAt } })),
    [aliceMade[2].id, aliceMade[1].id], 'filter by from (inclusive) and to (exclusive)')
  t.same(ids(await list(alice, { filter: { make: 'Massey Ferguson' } })), [], 'a make never seen: none')

  const one = await gql(alice, ONE, { id: aliceMade[1].id })
  t.same(one.body.data.identification.vehicles, aliceAnswers[1]!.vehicles, 'identification(id): her own')
  t.equal(one.body.data.identification.createdAt, aliceMade[1].createdAt)
  t.equal((await gql(bob, ONE, { id: aliceMade[1].id })).body.data.identification, null, 'bob cannot see alice\'s')
  t.same(ids(await list(bob)), [bobMade[0].id], 'bob lists his own only')
  t.equal((await gql(dashboard, ONE, { id: aliceMade[1].id })).body.data.identification.callerId, 'alice', 'the dashboard sees alice\'s')
  t.same(ids(await list(dashboard)), [bobMade[0].id, ...newestFirst], 'the dashboard lists everyone\'s')
  t.same(ids(await list(dashboard, { filter: { caller: 'bob' } })), [bobMade[0].id], 'and filters by caller')
  t.same(ids(await list(dashboard, { filter: { caller: 'alice', make: 'JOHN DEERE' } })), [newestFirst[0], newestFirst[4]], 'caller and make')
  const forbidden = await list(alice, { filter: { caller: 'bob' } })
  t.equal(forbidden.body.errors?.[0]?.extensions.code, 'FORBIDDEN', 'alice filtering by caller: FORBIDDEN')

  // 3. Delete.
  const withdrawn = aliceMade[3].id as string
  t.equal((await gql(bob, DELETE, { id: withdrawn })).body.data.deleteIdentification, false, 'bob cannot delete alice\'s')
  t.equal((await gql(alice, ONE, { id: withdrawn })).body.data.identification?.id, withdrawn, 'still there')
  t.equal((await gql(alice, DELETE, { id: withdrawn })).body.data.deleteIdentification, true, 'alice deletes hers')
  t.equal((await gql(alice, DELETE, { id: withdrawn })).body.data.deleteIdentification, false, 'once')
  made.set('alice', made.get('alice')!.filter(id => id !== withdrawn))
  t.notOk(ids(await list(alice)).includes(withdrawn), 'gone from her list')
  t.notOk(ids(await list(dashboard)).includes(withdrawn), 'and from the dashboard\'s')
  t.equal((await gql(dashboard, ONE, { id: withdrawn })).body.data.identification, null)

  // 4. Idempotency-Key: replay, 409 while running, 422 for another request under the key.
  next = answerOf(vehicle('BALER_HAY_TOOL', 'IMPLEMENT', 'Krone', 'BiG Pack'))
  const keyed = await identify(alice, photos[6] as Buffer, { key: 'upload-7f3a' })
  t.equal(keyed.status, 200)
  const keyedId = keyed.body.data.identifyVehicle.id as string
  remember('alice', keyed.body.data.identifyVehicle)
  t.equal(keyed.headers.get('idempotency-replayed'), null, 'the first is not a replay')
  const calls = chats()
  const replay = await identify(alice, photos[6] as Buffer, { key: 'upload-7f3a' })
  t.equal(replay.status, 200)
  t.equal(replay.body.data.identifyVehicle.id, keyedId, 'a retry replays: the same identification')
  t.same(replay.body.data.identifyVehicle.vehicles, keyed.body.data.identifyVehicle.vehicles)
  t.equal(replay.headers.get('idempotency-replayed'), 'true', 'Idempotency-Replayed: true')
  t.equal(chats(), calls, 'no model call')
  const otherCaller = await identify(bob, photos[6] as Buffer, { key: 'upload-7f3a' })
  t.not(otherCaller.body.data.identifyVehicle.id, keyedId, 'keys are per caller: bob\'s identical key is his own')
  remember('bob', otherCaller.body.data.identifyVehicle)
  bobMade.push(otherCaller.body.data.identifyVehicle)

  const slowPhoto = await images.jpeg(500, 375)
  uploads.push(slowPhoto)
  latencyMs = 1500
  const before409 = chats()
  const running = identify(alice, slowPhoto, { key: 'upload-slow' })
  t.ok(await waitFor(() => fake.inFlightChats === 1, 10_000), 'the first request is at the model')
  const busy = await identify(alice, slowPhoto, { key: 'upload-slow' })
  t.equal(busy.status, 409, 'the same key while the first runs: HTTP 409')
  t.equal(busy.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_IN_USE')
  t.ok(Number(busy.headers.get('retry-after')) > 0, 'with Retry-After')
  const first = await running
  latencyMs = 0
  t.equal(first.status, 200, 'the first finishes')
  remember('alice', first.body.data.identifyVehicle)
  const reused = await identify(alice, photos[0] as Buffer, { key: 'upload-slow' })
  t.equal(reused.status, 422, 'the key with another image: HTTP 422')
  t.equal(reused.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_REUSED')
  const reusedArgs = await identify(alice, slowPhoto, { key: 'upload-slow', variables: { language: 'fr' } })
  t.equal(reusedArgs.body.errors?.[0]?.extensions.code, 'IDEMPOTENCY_KEY_REUSED', 'or other arguments: 422')
  const afterwards = await identify(alice, slowPhoto, { key: 'upload-slow' })
  t.equal(afterwards.body.data?.identifyVehicle.id, first.body.data.identifyVehicle.id, 'once it finished, the key replays it')
  t.equal(chats(), before409 + 1, 'one model call for the key in all')

  // 5. Result cache: the same photo and question again is a new, cached identification with no model call.
  const beforeHit = chats()
  next = answerOf(vehicle('OTHER', 'MACHINE', 'not', 'asked'))
  const hit = await identified(alice, photos[0] as Buffer, next, { language: 'en' })
  t.equal(hit.cached, true, 'cached: true')
  t.not(hit.id, aliceMade[0].id, 'a new identification')
  t.same(hit.vehicles, aliceAnswers[0]!.vehicles, 'with the first answer')
  t.equal(hit.usage, null, 'and no usage')
  t.equal(chats(), beforeHit, 'no model call')
  remember('alice', hit)
  const miss = await identified(alice, photos[0] as Buffer, aliceAnswers[0]!, { language: 'de' })
  t.equal(miss.cached, false, 'another language is another question: the model is asked')
  t.equal(chats(), beforeHit + 1)
  remember('alice', miss)
  await written()
  const listedHit = (await gql(alice, ONE, { id: hit.id })).body.data.identification
  t.equal(listedHit?.cached, true, 'history says it was cached')

  // 6. Usage: what each caller asked, failed, had from the cache, and the tokens the fake reported.
  // Whole UTC days (yesterday to tomorrow), as a dashboard asks: from the daily totals, which keep a deleted record's cost.
  const midnight = Math.floor(Date.now() / 86_400_000) * 86_400_000
  const from = new Date(midnight - 86_400_000).toISOString()
  const to = new Date(midnight + 2 * 86_400_000).toISOString()
  // The fake reports prompt 1000 + messages, completion 42 per call; the answers carried the same.
  const reported = fake.chatRequests.map(record => ({ prompt: 1000 + (record.body.messages?.length ?? 0), completion: 42 }))
  const modelAnswers = [...aliceMade, ...bobMade, keyed.body.data.identifyVehicle, first.body.data.identifyVehicle, miss]
  t.equal(modelAnswers.length, fake.chatRequests.length, 'every model call is one of these answers')
  t.equal(sum(modelAnswers.map(a => a.usage.promptTokens)), sum(reported.map(r => r.prompt)), 'the answers carry the prompt tokens the fake reported')
  t.equal(sum(modelAnswers.map(a => a.usage.completionTokens)), sum(reported.map(r => r.completion)))
  const tokensOf = (answers: any[]): { promptTokens: number, completionTokens: number } => ({
    promptTokens: sum(answers.map(a => a.usage?.promptTokens ?? 0)),
    completionTokens: sum(answers.map(a => a.usage?.completionTokens ?? 0))
  })
  // alice: 5 + keyed + slow + hit + miss OK (one deleted: still counted), 1 failed; bob: 2.
  const aliceModel = [...aliceMade, keyed.body.data.identifyVehicle, first.body.data.identifyVehicle, miss]
  const aliceExpected = { key: 'alice', identifications: 10, failed: 1, cached: 1, ...tokensOf(aliceModel), estimatedCost: null }
  const bobExpected = { key: 'bob', identifications: 2, failed: 0, cached: 0, ...tokensOf(bobMade), estimatedCost: null }
  const aliceUsage = await gql(alice, USAGE, { from, to, groupBy: 'CALLER' })
  t.same(aliceUsage.body.data?.usage, [aliceExpected], 'alice\'s own usage: identifications, failed, cached, tokens')
  const aliceDays = await gql(alice, USAGE, { from, to })
  t.same(sum(aliceDays.body.data.usage.map((b: any) => b.identifications)), 10, 'by day, the same total')
  const all = await gql(dashboard, USAGE, { from, to, groupBy: 'CALLER' })
  t.same([...all.body.data.usage].sort((a: any, b: any) => a.key.localeCompare(b.key)), [aliceExpected, bobExpected], 'the dashboard\'s, grouped by caller')
  t.same((await gql(bob, USAGE, { from, to, groupBy: 'CALLER' })).body.data.usage, [bobExpected], 'bob sees only his')
  // A range that cuts a day (the last hour) sums that day's records themselves: the deleted one is not among them.
  const lastHours = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString(), groupBy: 'CALLER' }
  t.same((await gql(alice, USAGE, lastHours)).body.data.usage, [aliceExpected], 'a partial day keeps a deleted identification\'s cost too')

  // 7. Restart: SIGTERM right after several identifications; a new process on the same database lists them all.
  const burst = [await images.jpeg(700, 500), await images.jpeg(701, 500), await images.png(330, 250)]
  uploads.push(...burst)
  for (const photo of burst) remember('bob', await identified(bob, photo, bobAnswer))
  const stopped = server
  stopped.child.kill('SIGTERM')
  const exit = await Promise.race([stopped.exited, new Promise<null>(resolve => setTimeout(() => resolve(null), 15_000).unref())])
  t.same(exit, { code: 0, signal: null }, 'SIGTERM: exit 0')
  server = await start()
  const everything = ids(await list(dashboard))
  t.same([...everything].sort(), [...made.get('alice')!, ...made.get('bob')!].sort(), 'after the restart every identification made is listed')
  t.same(ids(await list(bob)).slice(0, 3), made.get('bob')!.slice(-3).reverse(), 'the last ones before SIGTERM among them')
  const afterRestart = await identified(alice, photos[1] as Buffer, aliceAnswers[1]!, { language: 'en' })
  t.equal(afterRestart.cached, true, 'the result cache survives the restart too')
  remember('alice', afterRestart)

  // 8. Database outage (where the database can go away under the running process) and recovery.
  if (database.outage !== undefined) {
    const health = async (): Promise<any> => {
      const res = await get(server.origin, '/health/ready')
      return { status: res.status, body: JSON.parse(res.text || 'null') }
    }
    t.same((await health()).body.degraded, undefined, 'before: not degraded')
    await database.outage.pause()
    const outagePhotos = [await images.jpeg(720, 540), await images.webp(310, 210)]
    uploads.push(...outagePhotos)
    const duringOutage: string[] = []
    for (const photo of outagePhotos) {
      const identification = await identified(alice, photo, aliceAnswers[2]!, { language: 'en' })
      t.same(identification?.vehicles, aliceAnswers[2]!.vehicles, 'database down: the identification still answers with data')
      duringOutage.push(identification.id)
      remember('alice', identification)
    }
    const keyedDuring = await identify(alice, photos[2] as Buffer, { key: 'during-outage' })
    t.ok(keyedDuring.body.data?.identifyVehicle, 'an Idempotency-Key is ignored, not an error, while the database is down')
    remember('alice', keyedDuring.body.data.identifyVehicle)
    duringOutage.push(keyedDuring.body.data.identifyVehicle.id)
    t.ok(await waitFor(async () => (await health()).body?.degraded?.includes('history'), 10_000, 100), '/health/ready says history is degraded')
    // The webhook worker finds the outbox unreachable at its next poll (WEBHOOK_POLL_MS; with no endpoint enabled
    // identifications do not wake it).
    await waitFor(async () => (await health()).body?.degraded?.includes('webhooks'), 10_000, 100)
    const ready = await health()
    t.equal(ready.status, 200, '/health/ready stays 200')
    t.same([...ready.body.degraded].sort(), ['history', 'webhooks'], 'degraded: history and webhooks (both wait for the database)')
    const down = await list(alice)
    t.equal(down.status, 503, 'a history query: HTTP 503')
    t.equal(down.body.errors?.[0]?.extensions.code, 'STORAGE_UNAVAILABLE')
    t.ok(Number(down.headers.get('retry-after')) > 0, 'with Retry-After')
    t.notMatch(JSON.stringify(down.body), /ECONNREFUSED|127\.0\.0\.1|postgres/i, 'no driver message')

    await database.outage.resume()
    const resumedAt = performance.now()
    const recovered = await waitFor(async () => {
      const listed = await list(alice)
      return listed.status === 200 && duringOutage.every(id => ids(listed).includes(id)) && (await health()).body?.degraded === undefined
    }, 30_000, 200)
    const recoveryMs = Math.round(performance.now() - resumedAt)
    t.ok(recovered, `back: the records made during the outage are listed and readiness is no longer degraded (${recoveryMs} ms)`)
    t.ok(recoveryMs < 10_000, `within a few seconds (${recoveryMs} ms)`)
    t.comment(`outage: recovered ${recoveryMs} ms after the database came back`)
  }

  await written()
  const finalList = ids(await list(dashboard))
  t.same([...finalList].sort(), [...made.get('alice')!, ...made.get('bob')!].sort(), 'at the end, every identification made (less the deleted one)')

  // No log line holds a key or the image's bytes.
  await stopServer(server)
  const output = servers.map(s => s.output()).join('\n')
  t.ok(output.length > 0, 'the servers logged')
  for (const key of keys) {
    t.notOk(output.includes(key.key), 'no API key in the log')
    t.notOk(output.includes(key.key.slice(4, 24)), 'nor a piece of one')
  }
  const sent = fake.chatRequests.map(record => imageFromChat(record).bytes)
  for (const bytes of [...uploads, ...sent]) {
    const middle = bytes.subarray(Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 24)
    t.notOk(output.includes(middle.toString('base64').slice(0, 24)), 'no image bytes (base64) in the log')
    t.notOk(output.includes(middle.toString('hex')), 'nor as hex')
  }
  t.equal(fake.badResponseFormats, 0, 'every model call carried the structured response_format')
  t.ok(fake.chatRequests.every(record => record.body.response_format?.json_schema?.strict === true), 'json_schema, strict, on every call')
}

function sum (values: number[]): number {
  return values.reduce((total, value) => total + value, 0)
}
