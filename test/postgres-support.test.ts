// test/support/postgres.ts: a real, throwaway PostgreSQL (Debian's postgresql, installed by .ci/run)
// that listens on loopback only, creates databases, and is gone (port closed, directory removed) once stopped.
import t from 'tap'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { Client } from 'pg'
import { createDatabase, startPostgres } from './support/postgres.ts'

async function portOpen (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

async function query<T extends Record<string, unknown>> (url: string, sql: string): Promise<T[]> {
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(sql)).rows
  } finally {
    await client.end()
  }
}

t.test('a server of its own, loopback only, gone after stop', async t => {
  const pg = await startPostgres(t)
  const url = new URL(pg.url)
  t.match(pg.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/, 'superuser postgres on 127.0.0.1')
  const port = Number(url.port)

  const [{ version }] = await query<{ version: string }>(pg.url, 'select version()') as [{ version: string }]
  t.match(version, /^PostgreSQL \d+/, 'answers queries')

  const [{ listen_addresses: listen }] = await query<{ listen_addresses: string }>(pg.url, 'show listen_addresses') as [{ listen_addresses: string }]
  t.equal(listen, '127.0.0.1', 'listens on 127.0.0.1 only')
  const [{ fsync }] = await query<{ fsync: string }>(pg.url, 'show fsync') as [{ fsync: string }]
  t.equal(fsync, 'off', 'tuned for speed')

  const dbUrl = await createDatabase(pg.url, 'history_test')
  t.equal(dbUrl, pg.url.replace(/\/postgres$/, '/history_test'), 'the new database\'s URL')
  const [{ db }] = await query<{ db: string }>(dbUrl, 'select current_database() as db') as [{ db: string }]
  t.equal(db, 'history_test', 'connects to the new database')
  await query(dbUrl, 'create table t (id int primary key); insert into t values (1)')
  t.same(await query(dbUrl, 'select id from t'), [{ id: 1 }], 'and stores in it')

  const [{ dir }] = await query<{ dir: string }>(pg.url, "select current_setting('data_directory') as dir") as [{ dir: string }]
  t.ok(existsSync(dir), 'its data directory exists while it runs')

  t.ok(await portOpen(port), 'the port is open while it runs')
  await pg.stop()
  t.notOk(await portOpen(port), 'the port is closed after stop')
  t.notOk(existsSync(dir), 'its directory is removed after stop')
  await pg.stop()
  t.pass('stop twice is harmless')
})

t.test('two servers at once do not collide', async t => {
  const [a, b] = await Promise.all([startPostgres(t), startPostgres(t)])
  t.not(a.url, b.url, 'different ports')
  await createDatabase(a.url, 'only_in_a')
  const inB = await query<{ datname: string }>(b.url, 'select datname from pg_database where datname = \'only_in_a\'')
  t.same(inB, [], 'separate clusters')
})
