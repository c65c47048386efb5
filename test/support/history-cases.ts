// History through the GraphQL API, in process: every identification recorded, listed newest first
// with keyset pages and filters, fetched, deleted; who may see what. The same cases run on each
// database (test/history.test.ts: SQLite; test/history-postgres.test.ts: PostgreSQL).
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from '../helper.ts'
import { identify, sendJson, type Answer } from './http.ts'
import { jpeg, png, text } from './images.ts'
import { newApiKey } from '../../src/callers/api-keys.ts'
import { record, type DatabaseEnv } from './history-records.ts'
import { historyInternals } from '../../src/history/plugin.ts'

const LIST = `query ($first: Int, $after: String, $filter: IdentificationFilter) {
  identifications(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id callerId cached answer vehicles { category make } createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`

async function identified (
  app: FastifyInstance, file: Buffer, headers: Record<string, string> = {}
): Promise<{ id: string, category: string }> {
  const res = await identify(app, file, { headers })
  if (res.body.errors) throw new Error(JSON.stringify(res.body.errors))
  return { id: res.body.data.identifyVehicle.id, category: res.body.data.identifyVehicle.vehicles[0]?.category }
}

async function flushed (app: FastifyInstance): Promise<void> {
  await app.history!.flushed()
}

export function historyCases (t: Test, databaseEnv: DatabaseEnv): void {
  t.test('every identification is recorded and listed newest first, page by page', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const ids: string[] = []
    for (let i = 0; i < 7; i++) ids.push((await identified(app, await jpeg(64 + i, 48))).id)
    await flushed(app)

    const seen: string[] = []
    let after: string | null = null
    let pages = 0
    for (;;) {
      const res: Answer = await sendJson(app, { query: LIST, variables: { first: 3, after } })
      t.notOk(res.body.errors, 'no errors')
      const { edges, pageInfo }: { edges: any[], pageInfo: any } = res.body.data.identifications
      seen.push(...edges.map((edge: any) => edge.node.id))
      pages++
      t.equal(pageInfo.hasPreviousPage, false)
      if (!pageInfo.hasNextPage) break
      after = pageInfo.endCursor
    }
    t.equal(pages, 3, '7 records, 3 per page')
    t.strictSame(seen, [...ids].reverse(), 'newest first, each once')

    const one = await sendJson(app, { query: 'query ($id: ID!) { identification(id: $id) { id answer cached callerId vehicles { category make model confidence evidence } image { sha256 } } }', variables: { id: ids[2] } })
    t.equal(one.body.data.identification.id, ids[2])
    t.equal(one.body.data.identification.cached, false)
    t.equal(one.body.data.identification.callerId, 'anonymous')
    t.equal(one.body.data.identification.vehicles[0].make, 'Simulated')
  })

  t.test('filters: category, make, time range; bad arguments are BAD_USER_INPUT', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const made = []
    for (let i = 0; i < 12; i++) made.push(await identified(app, await png(40 + i, 30)))
    await flushed(app)
    const category = made[0]!.category
    const res = await sendJson(app, { query: LIST, variables: { first: 100, filter: { category } } })
    const expected = made.filter(m => m.category === category).map(m => m.id).reverse()
    t.strictSame(res.body.data.identifications.edges.map((e: any) => e.node.id), expected, `only ${category}`)

    const byMake = await sendJson(app, { query: LIST, variables: { first: 100, filter: { make: '  SIMULATED ' } } })
    t.equal(byMake.body.data.identifications.edges.length, 12, 'make matches whatever the case')
    const none = await sendJson(app, { query: LIST, variables: { first: 100, filter: { make: 'John Deere' } } })
    t.equal(none.body.data.identifications.edges.length, 0)

    const future = await sendJson(app, { query: LIST, variables: { filter: { from: new Date(Date.now() + 60_000).toISOString() } } })
    t.equal(future.body.data.identifications.edges.length, 0, 'nothing from the future')
    const range = { from: new Date(Date.now() - 60_000).toISOString(), to: new Date(Date.now() + 1000).toISOString() }
    const past = await sendJson(app, { query: LIST, variables: { first: 100, filter: range } })
    t.equal(past.body.data.identifications.edges.length, 12)

    for (const variables of [{ first: 0 }, { first: 101 }, { first: -1 }, { after: 'not-a-cursor' }, { after: Buffer.from('[1,{}]').toString('base64url') }]) {
      const bad = await sendJson(app, { query: LIST, variables })
      t.equal(bad.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(variables))
    }
  })

  t.test('failures are recorded too (usage counts them) but not listed', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    await identified(app, await jpeg(64, 48))
    const refused = await identify(app, text)
    t.equal(refused.body.errors?.[0]?.extensions.code, 'BAD_USER_INPUT')
    await flushed(app)
    const list = await sendJson(app, { query: LIST })
    t.equal(list.body.data.identifications.edges.length, 1)
    const rows = await historyInternals(app.history!).store.db.selectFrom('identifications').select(['outcome']).execute()
    t.strictSame(rows.map(r => r.outcome).sort(), ['BAD_USER_INPUT', 'OK'])
  })

  t.test('a caller sees and deletes its own; ReadAll sees everyone\'s and may filter by caller', async t => {
    const alice = newApiKey('alice')
    const bob = newApiKey('bob')
    const dashboard = newApiKey('dashboard')
    const app = await buildTestApp(t, {
      env: { ...await databaseEnv(t), AUTH_MODE: 'apikey', API_KEY_HASHES: [alice.entry, bob.entry, `${dashboard.entry}:VehicleIdentification.ReadAll`].join(',') }
    })
    const as = (key: { key: string }) => ({ 'x-api-key': key.key })
    const a = await identified(app, await jpeg(64, 48), as(alice))
    const b = await identified(app, await jpeg(65, 48), as(bob))
    await flushed(app)

    const get = async (who: { key: string }, id: string) =>
      (await sendJson(app, { query: 'query ($id: ID!) { identification(id: $id) { id callerId } }', variables: { id } }, as(who))).body
    t.equal((await get(alice, a.id)).data.identification.id, a.id)
    t.equal((await get(alice, b.id)).data.identification, null, 'another caller\'s is not there for alice')
    t.equal((await get(dashboard, b.id)).data.identification.callerId, 'bob')

    const listed = async (who: { key: string }, filter?: object) =>
      (await sendJson(app, { query: LIST, variables: { filter } }, as(who))).body
    t.strictSame((await listed(alice)).data.identifications.edges.map((e: any) => e.node.id), [a.id])
    t.strictSame((await listed(dashboard)).data.identifications.edges.map((e: any) => e.node.id), [b.id, a.id])
    t.strictSame((await listed(dashboard, { caller: 'alice' })).data.identifications.edges.map((e: any) => e.node.id), [a.id])
    t.equal((await listed(alice, { caller: 'bob' })).errors?.[0]?.extensions.code, 'FORBIDDEN', 'filtering by caller needs ReadAll')

    const del = async (who: { key: string }, id: string) =>
      (await sendJson(app, { query: 'mutation ($id: ID!) { deleteIdentification(id: $id) }', variables: { id } }, as(who))).body
    t.equal((await del(alice, b.id)).data.deleteIdentification, false, 'alice cannot delete bob\'s')
    t.equal((await del(bob, b.id)).data.deleteIdentification, true)
    t.equal((await del(bob, b.id)).data.deleteIdentification, false, 'gone')
    t.equal((await get(dashboard, b.id)).data.identification, null)
  })

  t.test('a batch written twice (a retry after a lost reply) is recorded and counted once', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const store = historyInternals(app.history!).store
    const at = new Date('2026-11-10T12:00:00Z')
    const batch = [0, 1, 2].map(i => record({ createdAt: new Date(at.getTime() + i), promptTokens: 100 }))
    await store.insertMany(batch)
    await store.insertMany([...batch, record({ createdAt: at, promptTokens: 100 })])
    const [day] = await store.usage(new Date('2026-11-10T00:00:00Z'), new Date('2026-11-11T00:00:00Z'), null, 'DAY')
    t.equal(day?.identifications, 4, 'three once, plus the new one')
    t.equal(day?.promptTokens, 400)
    const categories = await store.db.selectFrom('identification_categories').select('identification_id').execute()
    t.equal(categories.length, 4, 'filter keys once each')
  })

  t.test('category and make together match one vehicle of both', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const store = historyInternals(app.history!).store
    const both = record({
      createdAt: new Date(Date.now() - 1000),
      vehicles: [
        { category: 'TRACTOR', kind: 'MACHINE', make: 'John Deere', model: '8R', confidence: 'HIGH', evidence: [] },
        { category: 'PLANTER_SEEDER', kind: 'IMPLEMENT', make: 'Väderstad', model: 'Tempo', confidence: 'MEDIUM', evidence: [] },
        { category: 'TRACTOR', kind: 'MACHINE', make: 'john deere ', model: null, confidence: 'LOW', evidence: [] }
      ]
    })
    await store.insertMany([both])
    const ids = async (filter: object) =>
      (await sendJson(app, { query: LIST, variables: { first: 10, filter } })).body.data.identifications.edges.map((e: any) => e.node.id)
    t.strictSame(await ids({ category: 'PLANTER_SEEDER', make: 'VÄDERSTAD' }), [both.id], 'the planter by its make')
    t.strictSame(await ids({ category: 'TRACTOR', make: 'John Deere' }), [both.id], 'two John Deere tractors: listed once')
    t.strictSame(await ids({ category: 'TRACTOR', make: 'Väderstad' }), [], 'no Väderstad tractor in the photo')
    t.strictSame(await ids({ make: 'väderstad' }), [both.id])
    t.strictSame(await ids({ category: 'TRACTOR' }), [both.id], 'listed once')
  })
}
