// Which write failures are a record's data (set aside) and which the database's (retried): real errors from
// node:sqlite and from a real PostgreSQL, the server reachable and not.
import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { classifyWriteError } from '../src/database/write-errors.ts'
import { startPostgres } from './support/postgres.ts'

async function failure (run: () => unknown): Promise<unknown> {
  try { await run() } catch (err) { return err }
  throw new Error('expected a failure')
}

t.test('node:sqlite', async t => {
  const db = new DatabaseSync(':memory:')
  db.exec("create table t (a text not null check (a <> 'bad'), b integer unique)")
  db.exec("create trigger r before insert on t when new.a = 'raise' begin select raise(abort, 'refused'); end")
  db.prepare('insert into t values (?, ?)').run('ok', 1)
  for (const [what, values] of [['check', ['bad', 2]], ['not null', [null, 3]], ['unique', ['x', 1]], ['trigger', ['raise', 4]]] as const) {
    const err = await failure(() => db.prepare('insert into t values (?, ?)').run(...(values as [string, number])))
    t.match(classifyWriteError(err), { data: true, reason: { sqlite: Number } }, what)
  }
  const missing = await failure(() => db.prepare('insert into nope values (?)').run(1))
  t.equal(classifyWriteError(missing).data, false, 'a missing table is not the record\'s fault')
  db.close()
  t.equal(classifyWriteError(new Error('history writer: worker exited (code 1)')).data, false, 'a lost writer thread')
  t.equal(classifyWriteError(new Error('history schema not migrated yet')).data, false)
})

t.test('PostgreSQL', async t => {
  const server = await startPostgres(t)
  const client = new pg.Client({ connectionString: server.url })
  await client.connect()
  await client.query("create table t (a varchar(5) not null check (a <> 'bad'), b integer unique, j jsonb)")
  await client.query('insert into t (a, b) values ($1, $2)', ['ok', 1])
  const shapes: Array<[string, string, unknown[]]> = [
    ['check', 'insert into t (a, b) values ($1, $2)', ['bad', 2]],
    ['too long', 'insert into t (a, b) values ($1, $2)', ['toolong', 3]],
    ['not null', 'insert into t (a, b) values ($1, $2)', [null, 4]],
    ['unique', 'insert into t (a, b) values ($1, $2)', ['x', 1]],
    ['NUL in text', 'insert into t (a, b) values ($1, $2)', ['a\u0000', 5]],
    ['\\u0000 in jsonb', 'insert into t (a, j) values ($1, $2)', ['j', '{"a":"\\u0000"}']]
  ]
  for (const [what, query, values] of shapes) {
    const err = await failure(() => client.query(query, values))
    t.match(classifyWriteError(err), { data: true, reason: { sqlstate: /^2[23]/ } }, what)
  }
  const missing = await failure(() => client.query('insert into nope values (1)'))
  t.equal(classifyWriteError(missing).data, false, 'a missing table (42P01) is retried')
  await client.end()

  await server.pause()
  const refused = await failure(async () => {
    const c = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 2_000 })
    await c.connect()
  })
  t.equal(classifyWriteError(refused).data, false, `the server down (${(refused as { code?: string }).code}) is not a data error`)
  await server.resume()
  const dropped = new pg.Client({ connectionString: server.url })
  await dropped.connect()
  dropped.on('error', () => {})
  const killer = new pg.Client({ connectionString: server.url })
  await killer.connect()
  const pid = (await dropped.query('select pg_backend_pid() as pid')).rows[0].pid
  await killer.query('select pg_terminate_backend($1)', [pid])
  await killer.end()
  const lost = await failure(() => dropped.query('select 1'))
  t.equal(classifyWriteError(lost).data, false, `a terminated connection (${(lost as { code?: string }).code ?? (lost as Error).message}) is not a data error`)
})
