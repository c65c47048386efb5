// Untrusted text and a write queue that sets a bad record aside, run on each database
// (test/storable-text.test.ts: SQLite; test/storable-text-postgres.test.ts: PostgreSQL):
//  - text holding U+0000 or unpaired surrogates (a model's answer, a receiver's reply, any row) is stored as U+FFFD;
//  - a record the database refuses for its data (a constraint the test adds: it survives the sanitising) is set
//    aside, logged and counted, with its webhook events; the others are written and the queue moves on;
//  - a database that cannot be reached is not a data error: records wait, none is set aside;
//  - such text in a GraphQL argument is 400 BAD_USER_INPUT, never 503; a history query during an outage is 503.
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import pino from 'pino'
import { buildAzureTestApp, buildTestApp } from '../helper.ts'
import { identify as identifyPhoto, sendJson, sendParts } from './http.ts'
import { jpeg } from './images.ts'
import { record, type DatabaseEnv } from './history-records.ts'
import { DEFAULT_ANSWER, type FakeAzure } from './fake-azure.ts'
import { internalsOf } from '../../src/webhooks/plugin.ts'
import { startReceiver } from './webhook-receiver.ts'
import { buildWebhookApp, createEndpoint, deliveries, identify, sleep } from './webhooks.ts'
import { historyInternals } from '../../src/history/plugin.ts'

/** Refusals the database makes for a marked value, whatever the sanitising: CHECK constraints, or triggers on SQLite. */
async function refuseMarkedRows (app: FastifyInstance): Promise<void> {
  const db = historyInternals(app.history!).store.db
  const statements = app.database!.dialect === 'postgres'
    ? [
        'alter table identifications add constraint refuse_marked_answer check (answer is null or answer not like \'%REFUSE-ME%\')',
        'alter table identification_makes add constraint refuse_marked_make check (make_key <> \'refuse-me\')',
        'alter table webhook_attempts add constraint refuse_marked_response check (response is null or response not like \'%REFUSE-ME%\')'
      ]
    : [
        'create trigger refuse_marked_answer before insert on identifications when new.answer like \'%REFUSE-ME%\' ' +
          'begin select raise(abort, \'refused by the test\'); end',
        'create trigger refuse_marked_make before insert on identification_makes when new.make_key = \'refuse-me\' ' +
          'begin select raise(abort, \'refused by the test\'); end',
        'create trigger refuse_marked_response before insert on webhook_attempts when new.response like \'%REFUSE-ME%\' ' +
          'begin select raise(abort, \'refused by the test\'); end'
      ]
  for (const statement of statements) await sql.raw(statement).execute(db)
}

/**
 * Refusals with an error the code does not know (neither a record's data nor the database's state): a trigger raising
 * its own SQLSTATE (AB123) on PostgreSQL, a trigger calling json() on text that is not JSON (SQLITE_ERROR) on SQLite.
 * `marked`: only records whose answer has UNKNOWN-ME; otherwise every record. Returns how to take it away.
 */
async function refuseWithUnknownError (app: FastifyInstance, marked: boolean): Promise<() => Promise<void>> {
  const db = historyInternals(app.history!).store.db
  const statements = app.database!.dialect === 'postgres'
    ? [
        'create function refuse_unknown() returns trigger language plpgsql as $$ begin ' +
          (marked ? 'if new.answer like \'%UNKNOWN-ME%\' then ' : 'if true then ') +
          'raise exception \'refused: %\', new.answer using errcode = \'AB123\'; end if; return new; end $$',
        'create trigger refuse_unknown before insert on identifications for each row execute function refuse_unknown()'
      ]
    : [
        'create trigger refuse_unknown before insert on identifications ' + (marked ? 'when new.answer like \'%UNKNOWN-ME%\' ' : '') +
          'begin select json(\'not json: \' || new.answer); end'
      ]
  for (const statement of statements) await sql.raw(statement).execute(db)
  return async () => { await sql.raw('drop trigger refuse_unknown' + (app.database!.dialect === 'postgres' ? ' on identifications' : '')).execute(db) }
}

function capturedLog (): { logger: pino.Logger, text: () => string } {
  const lines: string[] = []
  return { logger: pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } }), text: () => lines.join('') }
}

/** A webhook endpoint for identification.completed, written straight into the tables; its id. */
async function insertEndpoint (app: FastifyInstance, description: string | null): Promise<string> {
  const db = historyInternals(app.history!).store.db
  const id = crypto.randomUUID()
  await db.insertInto('webhook_endpoints').values({
    id, url: 'https://example.com/hook', description, secret: 'whsec_test', created_at: 1, updated_at: 1
  } as never).execute()
  await db.insertInto('webhook_endpoint_events').values({ endpoint_id: id, event_type: 'identification.completed' } as never).execute()
  return id
}

async function until (check: () => boolean | Promise<boolean>, ms = 20_000, what: string | (() => string) = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
    await sleep(20)
  }
}

const UNSTORABLE = 'Tractor\u0000 with \ud800 and \udfff; end'
const STORED = 'Tractor\uFFFD with \uFFFD and \uFFFD; end'

export interface StorableOptions {
  /** The database stops answering (PostgreSQL: the server paused; SQLite: the table taken away) and comes back. */
  outage: (app: FastifyInstance) => Promise<{ end: () => Promise<void> }>
}

export function storableCases (t: Test, databaseEnv: DatabaseEnv, fake: FakeAzure, options: StorableOptions): void {
  t.test('a model answer with U+0000 and unpaired surrogates is stored as U+FFFD; history, replays and the queue go on', async t => {
    const { app } = await buildAzureTestApp(t, fake, await databaseEnv(t))
    fake.chatFault = () => ({
      kind: 'ok',
      structured: {
        answer: UNSTORABLE,
        vehicles: [{ ...DEFAULT_ANSWER.vehicles[0]!, make: 'Deere\u0000X', evidence: ['badge \udc00', 'nul\u0000'] }],
        imageQuality: 'CLEAR'
      }
    })
    const photo = await jpeg(64, 48)
    const first = await identifyPhoto(app, photo, { headers: { 'idempotency-key': 'poisoned-1' } })
    t.notOk(first.body.errors, 'answered')
    const id = first.body.data.identifyVehicle.id
    await app.history!.flushed()
    t.equal(historyInternals(app.history!).recorder.failing, false, 'the writer is not stuck')
    t.equal(historyInternals(app.history!).recorder.pending, 0)

    const one = await sendJson(app, { query: 'query ($id: ID!) { identification(id: $id) { id answer vehicles { make evidence } } }', variables: { id } })
    t.equal(one.statusCode, 200)
    t.equal(one.body.data.identification.answer, STORED, 'stored, with U+FFFD in place of what could not be')
    t.strictSame(one.body.data.identification.vehicles[0], { make: 'Deere\uFFFDX', evidence: ['badge \uFFFD', 'nul\uFFFD'] })
    const byMake = await sendJson(app, { query: 'query ($make: String) { identifications(filter: { make: $make }) { edges { node { id } } } }', variables: { make: 'deere\uFFFDx' } })
    t.strictSame(byMake.body.data.identifications.edges.map((edge: any) => edge.node.id), [id], 'its make is a filter key')

    const calls = fake.chatRequests.length
    const replay = await identifyPhoto(app, photo, { headers: { 'idempotency-key': 'poisoned-1' } })
    t.equal(replay.headers['idempotency-replayed'], 'true', 'the retry is replayed')
    t.equal(replay.body.data.identifyVehicle.id, id)
    t.equal(fake.chatRequests.length, calls, 'no second model call')

    fake.chatFault = () => ({ kind: 'ok' })
    const next = await identifyPhoto(app, await jpeg(65, 48))
    await app.history!.flushed()
    t.ok(await historyInternals(app.history!).store.get(next.body.data.identifyVehicle.id, null), 'the next caller\'s record is written too')
    t.equal((await app.inject('/health/ready')).json().degraded, undefined, 'not degraded')
  })

  t.test('every write goes through the same path: other tables\' text is made storable too', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const db = historyInternals(app.history!).store.db
    await db.insertInto('idempotency_keys').values({
      caller_id: 'c\u0000', key: 'k\ud800', fingerprint: 'f', state: 'running', identification_id: null, created_at: 1, expires_at: 2
    }).execute()
    const key = await db.selectFrom('idempotency_keys').select(['caller_id', 'key']).executeTakeFirstOrThrow()
    t.strictSame({ ...key }, { caller_id: 'c\uFFFD', key: 'k\uFFFD' })
    const endpointId = await insertEndpoint(app, 'note\u0000\udfff')
    const endpoint = await db.selectFrom('webhook_endpoints').select('description').where('id', '=', endpointId).executeTakeFirstOrThrow()
    t.equal(endpoint.description, 'note\uFFFD\uFFFD')
    // A lookup compares what was stored: the same text finds the row, sanitised the same way.
    const found = await db.selectFrom('idempotency_keys').select('key').where('key', '=', 'k\udbff').executeTakeFirst()
    t.equal(found?.key, 'k\uFFFD')
  })

  t.test('a record the database refuses is set aside (with its webhook events); the others are written; nothing retried for ever', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const { recorder, store } = historyInternals(app.history!)
    await refuseMarkedRows(app)
    // An endpoint straight in the tables, so that each written record gets its outbox row; no worker sends anything.
    await internalsOf(app.webhooks!).worker.stop()
    await insertEndpoint(app, null)
    const good = [record({}), record({}), record({}), record({})]
    const refused = [
      record({ answer: 'please REFUSE-ME' }), // refused by the identifications row
      record({ vehicles: [{ category: 'TRACTOR', kind: 'MACHINE', make: ' Refuse-Me ', model: null, confidence: 'LOW', evidence: [] }] }) // by a filter key, later in the transaction
    ]
    if (app.database!.dialect === 'postgres') refused.push(record({ model: 'm'.repeat(300) })) // too long for varchar(255): 22001
    const order = [good[0]!, refused[0]!, good[1]!, refused[1]!, good[2]!, ...refused.slice(2), good[3]!]
    for (const one of order) recorder.record(one)
    await until(() => recorder.pending === 0, 20_000, 'the queue drained')
    await recorder.flushed()

    t.equal(recorder.rejected, refused.length, 'each refused record set aside')
    t.equal(recorder.failing, false, 'not taken for an outage')
    for (const one of good) t.ok(await store.get(one.id, null), 'a good record of the same batches is written')
    for (const one of refused) t.notOk(await store.db.selectFrom('identifications').select('id').where('id', '=', one.id).executeTakeFirst(), 'nothing of it written')
    const outbox = await store.db.selectFrom('webhook_deliveries').select('identification_id').execute()
    t.strictSame(outbox.map(row => row.identification_id).sort(), good.map(one => one.id).sort(), 'webhook events only for the written ones')
    const metrics = (await app.inject('/metrics')).payload
    t.match(metrics, new RegExp(`agrivision_history_records_total\\{result="rejected"\\} ${refused.length}`))
    t.equal((await app.inject('/health/ready')).json().degraded, undefined, 'readiness: the database is up')

    // A caller waiting for its record is not held by a refused one; and the queue goes on.
    const started = Date.now()
    await recorder.recordDurably(record({ answer: 'again REFUSE-ME' }), 10_000)
    t.ok(Date.now() - started < 5_000, 'a refused record releases its waiting answer')
    const after = record({})
    recorder.record(after)
    await until(() => recorder.pending === 0, 20_000, () => `the queue drained (${recorder.pending} pending, failing: ${recorder.failing})`)
    await recorder.flushed()
    t.ok(await store.get(after.id, null), 'later records are written')
    t.equal(recorder.rejected, refused.length + 1)
  })

  t.test('a record refused with an error the code does not know is set aside once others are written; nothing retried for ever', async t => {
    const logs = capturedLog()
    const app = await buildTestApp(t, { env: await databaseEnv(t), logger: logs.logger })
    const { recorder, store } = historyInternals(app.history!)
    await refuseWithUnknownError(app, true)
    const good = [record({}), record({}), record({})]
    const refused = [record({ answer: 'secret UNKNOWN-ME one' }), record({ answer: 'secret UNKNOWN-ME two' })]
    for (const one of [good[0]!, refused[0]!, good[1]!, refused[1]!, good[2]!]) recorder.record(one)
    await until(() => recorder.pending === 0, 30_000, () => `the queue drained (${recorder.pending} pending, failing: ${recorder.failing})`)
    await recorder.flushed()
    t.equal(recorder.rejected, refused.length, 'each refused record set aside')
    for (const one of good) t.ok(await store.get(one.id, null), 'the others of the batch are written')
    for (const one of refused) t.notOk(await store.db.selectFrom('identifications').select('id').where('id', '=', one.id).executeTakeFirst(), 'not written')
    t.match((await app.inject('/metrics')).payload, new RegExp(`agrivision_history_records_total\\{result="rejected"\\} ${refused.length}`))
    t.notMatch(logs.text(), /secret/, 'the database\'s message (it quotes the record) is not logged')
    t.match(logs.text(), new RegExp(refused[0]!.id), 'the record set aside is logged by its id')

    // Alone in the buffer, with no other record to show that the database writes: it waits, then goes once one is written.
    const alone = record({ answer: 'secret UNKNOWN-ME alone' })
    recorder.record(alone)
    await until(() => recorder.failing, 30_000, 'held, taken for the database\'s failure')
    t.equal(recorder.rejected, refused.length, 'not set aside on a guess')
    t.equal(recorder.pending, 1)
    const next = record({})
    recorder.record(next)
    await until(() => recorder.pending === 0, 60_000, () => `the queue drained (${recorder.pending} pending, failing: ${recorder.failing})`)
    t.equal(recorder.rejected, refused.length + 1, 'set aside once another record was written')
    t.ok(await store.get(next.id, null), 'the next record is written')
    t.equal(recorder.failing, false)
  })

  t.test('an unknown error every record meets is the database\'s: nothing set aside, the records wait and are written later', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const { recorder, store } = historyInternals(app.history!)
    const allow = await refuseWithUnknownError(app, false)
    const waiting = [record({}), record({}), record({})]
    for (const one of waiting) recorder.record(one)
    await until(() => recorder.failing, 30_000, 'the writer holds the records')
    t.equal(recorder.rejected, 0, 'nothing set aside')
    t.equal(recorder.pending, waiting.length, 'they wait')
    t.equal((await app.inject('/health/ready')).json().degraded?.[0], 'history', 'readiness says history is degraded')
    await allow()
    await until(() => !recorder.failing && recorder.pending === 0, 60_000, 'written once the database takes records again')
    for (const one of waiting) t.ok(await store.get(one.id, null), 'written')
    t.equal(recorder.rejected, 0)
  })

  t.test('an outage is not a data error: records wait (none set aside); a history query answers 503 with Retry-After', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const { recorder, store } = historyInternals(app.history!)
    const before = record({})
    recorder.record(before)
    await recorder.flushed()
    const outage = await options.outage(app)
    const waiting = [record({}), record({}), record({})]
    for (const one of waiting) recorder.record(one)
    await until(() => recorder.failing, 30_000, 'the writer sees the outage')
    t.equal(recorder.rejected, 0, 'nothing set aside')
    t.equal(recorder.pending, 3, 'they wait')

    for (const [query, variables] of [
      ['query ($id: ID!) { identification(id: $id) { id } }', { id: before.id }],
      ['{ identifications { edges { node { id } } } }', {}],
      ['mutation ($id: ID!) { deleteIdentification(id: $id) }', { id: before.id }],
      ['{ usage(from: "2026-01-01T01:00:00Z", to: "2026-01-01T02:00:00Z") { key } }', {}] // hours: read from the records
    ] as const) {
      const res = await sendJson(app, { query, variables })
      t.equal(res.body.errors?.[0]?.extensions?.code, 'STORAGE_UNAVAILABLE', query)
      t.equal(res.statusCode, 503, `${query}: HTTP 503`)
      t.ok(Number(res.headers['retry-after']) > 0, `${query}: Retry-After`)
    }
    // A mutation of several fields, one failed: not a 503, since a client retrying on the status would identify
    // (and pay for) the photo again.
    const both = await sendParts(app, [
      ['operations', JSON.stringify({
        query: 'mutation ($image: Upload!, $id: ID!) { identifyVehicle(image: $image) { id } deleteIdentification(id: $id) }',
        variables: { image: null, id: before.id }
      })],
      ['map', JSON.stringify({ 0: ['variables.image'] })],
      ['0', await jpeg(66, 48), 'photo.jpg', 'image/jpeg']
    ])
    t.equal(both.statusCode, 200, 'identified beside a failed delete: 200')
    // deleteIdentification is Boolean!: its error nulls the whole `data` (GraphQL), though the identification ran.
    t.equal(both.body.data, null)
    t.equal(both.body.errors?.[0]?.extensions?.code, 'STORAGE_UNAVAILABLE', 'the delete says why it failed')
    t.equal(both.headers['retry-after'], undefined, 'no Retry-After to invite a retry')

    await outage.end()
    await until(() => !recorder.failing && recorder.pending === 0, 60_000, 'written once the database is back')
    for (const one of waiting) t.ok(await store.get(one.id, null), 'written after the outage')
    t.equal(recorder.rejected, 0)
  })

  t.test('text that cannot be stored in an argument is 400 BAD_USER_INPUT, not 503, whatever the argument', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const cursor = Buffer.from(JSON.stringify([Date.now(), 'a\u0000b'])).toString('base64url')
    const shapes: Array<[string, Record<string, unknown>, string]> = [
      ['query ($id: ID!) { identification(id: $id) { id } }', { id: 'a\u0000b' }, '$id'],
      ['query ($id: ID!) { identification(id: $id) { id } }', { id: '\ud800' }, '$id'],
      ['{ identification(id: "x\\u0000") { id } }', {}, 'id'],
      ['query ($f: IdentificationFilter) { identifications(filter: $f) { edges { cursor } } }', { f: { make: 'Deere\u0000' } }, '$f.make'],
      ['{ identifications(filter: { make: "Deere\\u0000" }) { edges { cursor } } }', {}, 'filter'],
      ['query ($f: IdentificationFilter) { identifications(filter: $f) { edges { cursor } } }', { f: { caller: 'c\u0000' } }, '$f.caller'],
      ['mutation ($id: ID!) { deleteIdentification(id: $id) }', { id: '\u0000' }, '$id'],
      ['mutation { createWebhookEndpoint(url: "https://example.com/\\u0000", events: [IDENTIFICATION_COMPLETED]) { secret } }', {}, 'url'],
      ['mutation ($d: String) { createWebhookEndpoint(url: "https://example.com/", events: [IDENTIFICATION_COMPLETED], description: $d) { secret } }',
        { d: 'x\udfffy' }, '$d'],
      // A variable's default value is the argument's value when the variable is not sent.
      ['query ($id: ID! = "a\\u0000b") { identification(id: $id) { id } }', {}, '$id'],
      ['query ($f: IdentificationFilter = { make: "Deere\\u0000" }) { identifications(filter: $f) { edges { cursor } } }', {}, '$f']
    ]
    // Twice: the second time each document comes from mercurius' cache (its literals are checked once per document).
    for (const round of ['first', 'again']) {
      for (const [query, variables, argument] of shapes) {
        const res = await sendJson(app, { query, variables })
        t.equal(res.statusCode, 400, `${round}: ${JSON.stringify(variables)} ${query}`)
        t.equal(res.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT')
        t.equal(res.body.errors?.[0]?.extensions?.argument, argument)
      }
    }
    // A document found storable once, then sent with a variable that is not: refused.
    const query = 'query ($id: ID!) { identification(id: $id) { id } }'
    t.equal((await sendJson(app, { query, variables: { id: 'fine' } })).statusCode, 200)
    const after = await sendJson(app, { query, variables: { id: 'not\u0000fine' } })
    t.equal(after.statusCode, 400)
    t.equal(after.body.errors?.[0]?.extensions?.argument, '$id')
    // An unpaired surrogate escape in the document itself does not even parse (graphql-js): 400 as well.
    const literal = await sendJson(app, { query: '{ identifications(filter: { make: "\\udc00" }) { edges { cursor } } }' })
    t.equal(literal.statusCode, 400)
    t.equal(literal.body.errors?.[0]?.extensions?.code, 'GRAPHQL_PARSE_FAILED')
    // A cursor is decoded before it reaches a query: the same text inside one is refused as a bad cursor.
    const bad = await sendJson(app, { query: 'query ($after: String) { identifications(after: $after) { edges { cursor } } }', variables: { after: cursor } })
    t.equal(bad.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT')
    t.equal(bad.body.errors?.[0]?.extensions?.argument, 'after')
    // An identification's instructions too (a multipart request's variables).
    const res = await identifyPhoto(app, await jpeg(64, 48), { variables: { instructions: 'look\u0000' } })
    t.equal(res.statusCode, 400)
    t.equal(res.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT')
    // Storable text, however unusual, still passes.
    const fine = await sendJson(app, { query: 'query ($id: ID!) { identification(id: $id) { id } }', variables: { id: '\uFFFD😀\u0001' } })
    t.equal(fine.statusCode, 200)
    t.equal(fine.body.data.identification, null)
  })

  t.test('webhook replies that cannot be stored as they are: each attempt recorded once, never sent again for ever', async t => {
    const replies: Record<string, Buffer | string> = {
      '/nul': 'ok\u0000done',
      '/zeros': Buffer.alloc(100),
      '/bytes': Buffer.from([0x6f, 0x6b, 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), // invalid UTF-8, and a UTF-8-encoded lone surrogate
      '/escapes': '{"note":"\\ud800\\u0000"}', // JSON escapes: plain ASCII, kept as they are
      '/refused': 'REFUSE-ME' // refused by a constraint the test adds, whatever the sanitising
    }
    const receiver = await startReceiver(t, request => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: replies[request.path] ?? '' }))
    const app = await buildWebhookApp(t, await databaseEnv(t))
    await refuseMarkedRows(app)
    const endpoints = new Map<string, string>()
    for (const path of Object.keys(replies)) endpoints.set(path, (await createEndpoint(app, receiver.url(path))).id)
    await identify(app)
    const settled = async (): Promise<boolean> => {
      for (const id of endpoints.values()) if ((await deliveries(app, id)).edges[0]?.node.state !== 'SUCCEEDED') return false
      return true
    }
    await until(settled, 20_000, 'every delivery succeeded')
    await sleep(1_000) // a few polls: nothing is claimed again
    const stored = new Map<string, any>()
    for (const [path, id] of endpoints) {
      const { edges } = await deliveries(app, id)
      t.equal(edges.length, 1, path)
      t.equal(edges[0].node.attempts.length <= 1, true, `${path}: one attempt row at most`)
      stored.set(path, edges[0].node.attempts[0])
      t.equal(receiver.received.filter(r => r.path === path).length, 1, `${path}: sent once`)
    }
    t.equal(stored.get('/nul').response, 'ok\uFFFDdone')
    t.equal(stored.get('/zeros').response, '\uFFFD'.repeat(100))
    t.notOk(stored.get('/bytes').response.includes('\u0000'), 'bytes: no NUL')
    t.ok(stored.get('/bytes').response.isWellFormed() && stored.get('/bytes').response.startsWith('ok\uFFFD'), 'bytes: decoded lossily')
    t.equal(stored.get('/escapes').response, replies['/escapes'])
    t.match(stored.get('/refused'), { responseStatus: 200, response: null, error: /could not be stored/ }, 'refused details: the attempt counted without them')
    const rows = await historyInternals(app.history!).store.db.selectFrom('webhook_deliveries').select(['state', 'attempts']).execute()
    t.ok(rows.every(row => row.state === 'succeeded' && Number(row.attempts) === 1), 'each delivery advanced after its one attempt')
  })
}
