// Which write failures are a record's data (set aside), which the database's (retried), and which neither (unknown:
// the recorder decides on evidence): real errors from node:sqlite and from a real PostgreSQL, the server reachable and not.
import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
  // SQLITE_ERROR is also what a function refusing a value raises: not known to be either's.
  t.equal(classifyWriteError(missing).kind, 'unknown', 'SQLITE_ERROR: unknown')
  db.exec("create trigger j before insert on t when new.a = 'json' begin select json('not json: ' || new.a); end")
  const unknown = await failure(() => db.prepare('insert into t values (?, ?)').run('json', 5))
  t.match(classifyWriteError(unknown), { kind: 'unknown', data: false, reason: { sqlite: 1 } }, 'a trigger\'s function failing on the value: unknown')
  db.close()

  // SQLITE_BUSY: another connection holds the write lock.
  const file = join(mkdtempSync(join(tmpdir(), 'write-errors-')), 'busy.db')
  const holder = new DatabaseSync(file)
  holder.exec('create table t (a text)')
  holder.exec('begin immediate')
  const other = new DatabaseSync(file)
  other.exec('PRAGMA busy_timeout = 0')
  const busy = await failure(() => other.prepare('insert into t values (?)').run('x'))
  t.match(classifyWriteError(busy), { kind: 'database', data: false, reason: { sqlite: 5 } }, 'SQLITE_BUSY is the database\'s')
  holder.exec('rollback')
  holder.close()
  other.close()
  t.equal(classifyWriteError(new Error('history writer: worker exited (code 1)')).kind, 'database', 'a lost writer thread')
  t.equal(classifyWriteError(new Error('history schema not migrated yet')).kind, 'database')
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
  t.match(classifyWriteError(missing), { kind: 'database', data: false }, 'a missing table (42P01) is the database\'s: retried')
  await client.query(`create function refuse() returns trigger language plpgsql as $$ begin
    raise exception 'refused: %', new.a using errcode = 'AB123'; end $$`)
  await client.query('create trigger refuse before insert on t for each row when (new.a = \'cust\') execute function refuse()')
  const custom = await failure(() => client.query('insert into t (a, b) values ($1, $2)', ['cust', 6]))
  t.match(classifyWriteError(custom), { kind: 'unknown', data: false, reason: { sqlstate: 'AB123' } }, 'a trigger\'s own SQLSTATE: unknown')
  t.notMatch(JSON.stringify(classifyWriteError(custom).reason), /cust/, 'the reason holds no value')
  const cancelled = await failure(async () => {
    await client.query('set statement_timeout = 50')
    try { await client.query('select pg_sleep(2)') } finally { await client.query('set statement_timeout = 0') }
  })
  t.match(classifyWriteError(cancelled), { kind: 'database', reason: { sqlstate: '57014' } }, 'a cancelled statement is the database\'s')
  await client.end()

  await server.pause()
  const refused = await failure(async () => {
    const c = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 2_000 })
    await c.connect()
  })
  t.equal(classifyWriteError(refused).kind, 'database', `the server down (${(refused as { code?: string }).code}) is not a data error`)
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
  t.equal(classifyWriteError(lost).kind, 'database', `a terminated connection (${(lost as { code?: string }).code ?? (lost as Error).message}) is not a data error`)
})
