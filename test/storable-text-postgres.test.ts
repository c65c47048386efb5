// Untrusted text into storage, and a write queue that sets a bad record aside, on PostgreSQL (the same cases as
// test/storable-text.test.ts on SQLite): each test with its own database in one throwaway cluster.
import t from 'tap'
import { createDatabase, startPostgres } from './support/postgres.ts'
import { FakeAzure } from './support/fake-azure.ts'
import { storableCases } from './support/storable-cases.ts'

const server = await startPostgres(t)
let databases = 0
const fake = await new FakeAzure().start()
t.teardown(() => fake.close())

storableCases(t, async () => ({ DATABASE_URL: await createDatabase(server.url, `storable_${++databases}`) }), fake, {
  // The server stopped (fast shutdown: connections closed), then started again on the same data.
  outage: async () => {
    await server.pause()
    return { end: async () => { await server.resume() } }
  }
})
