// WEBHOOK_MAX_ENDPOINTS holds under concurrency, on SQLite and PostgreSQL: creates sent all at once, and
// creates racing deletes, never leave more endpoints than the limit, and every refusal is too_many_endpoints.
import t from 'tap'
import type { Test } from 'tap'
import { tempDataDir } from './helper.ts'
import { createDatabase, startPostgres } from './support/postgres.ts'
import { startReceiver } from './support/webhook-receiver.ts'
import { buildWebhookApp, createEndpoint, endpoints, gql } from './support/webhooks.ts'
import { historyInternals } from '../src/history/plugin.ts'

const LIMIT = 20
// Not about the GraphQL rate limit: every request comes from one address.
const ENV = { WEBHOOK_MAX_ENDPOINTS: String(LIMIT), GRAPHQL_RATE_LIMIT_PER_MINUTE: '0', RATE_LIMIT_PER_MINUTE: '0' }

const pgServer = await startPostgres(t)
let databases = 0

const databasesUnderTest: Array<[string, () => Promise<Record<string, string>>]> = [
  ['SQLite', async () => ({ DATA_DIR: tempDataDir() })],
  ['PostgreSQL', async () => ({ DATABASE_URL: await createDatabase(pgServer.url, `webhook_limits_${++databases}`) })]
]

async function countRows (app: Awaited<ReturnType<typeof buildWebhookApp>>): Promise<number> {
  const row = await historyInternals(app.history!).store.db.selectFrom('webhook_endpoints').select(eb => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
  return Number(row.n)
}

for (const [name, databaseEnv] of databasesUnderTest) {
  t.test(`${name}: ${LIMIT * 2} creates at once with a limit of ${LIMIT}: ${LIMIT} succeed, the rest are refused`, async (t: Test) => {
    const app = await buildWebhookApp(t, { ...ENV, ...await databaseEnv() })
    const receiver = await startReceiver(t)
    const answers = await Promise.all(Array.from({ length: LIMIT * 2 }, (_, i) => createEndpoint(app, receiver.url(`/at-once-${i}`))))
    const created = answers.filter(answer => answer.id !== undefined)
    const refused = answers.filter(answer => answer.id === undefined)
    t.equal(created.length, LIMIT, `${created.length} created`)
    t.ok(refused.every(answer => answer.answer.body.errors?.[0]?.extensions?.reason === 'too_many_endpoints'),
      'every other one is refused with too_many_endpoints')
    t.equal(await countRows(app), LIMIT, 'the table holds the limit, no more')
    t.equal((await endpoints(app)).length, LIMIT)
    const noEvents = await historyInternals(app.history!).store.db.selectFrom('webhook_endpoint_events').select('endpoint_id').distinct().execute()
    t.equal(noEvents.length, LIMIT, 'a refused create left no subscription rows behind')

    // A second wave, smaller and mixed with single creates: still none beyond the limit.
    const again = await Promise.all(Array.from({ length: 5 }, (_, i) => createEndpoint(app, receiver.url(`/again-${i}`))))
    t.ok(again.every(answer => answer.id === undefined), 'at the limit, every create is refused')
  })

  t.test(`${name}: creates racing deletes never exceed the limit`, async (t: Test) => {
    const app = await buildWebhookApp(t, { ...ENV, ...await databaseEnv() })
    const receiver = await startReceiver(t)
    for (let i = 0; i < LIMIT; i++) await createEndpoint(app, receiver.url(`/first-${i}`))
    t.equal(await countRows(app), LIMIT, 'filled up to the limit, one at a time')
    const existing = (await endpoints(app)).map(endpoint => endpoint.id as string)
    const toDelete = existing.slice(0, 8)
    // 8 deletes and 24 creates, interleaved: at most 8 creates can find room.
    const deletes = toDelete.map(async id => (await gql(app, `mutation { deleteWebhookEndpoint(id: "${id}") }`)).body.data?.deleteWebhookEndpoint)
    const creates = Array.from({ length: 24 }, (_, i) => createEndpoint(app, receiver.url(`/racing-${i}`)))
    const [deleted, created] = await Promise.all([Promise.all(deletes), Promise.all(creates)])
    t.ok(deleted.every(Boolean), 'every delete succeeded')
    const succeeded = created.filter(answer => answer.id !== undefined).length
    t.ok(succeeded <= toDelete.length, `${succeeded} creates found room (at most the ${toDelete.length} deleted)`)
    const rows = await countRows(app)
    t.ok(rows <= LIMIT, `${rows} endpoints, within the limit`)
    t.equal(rows, LIMIT - toDelete.length + succeeded, 'every successful create is there')
    t.ok(created.filter(answer => answer.id === undefined).every(answer => answer.answer.body.errors?.[0]?.extensions?.reason === 'too_many_endpoints'),
      'the refusals are too_many_endpoints')
  })
}
