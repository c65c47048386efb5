// usage(from, to, groupBy) over records with controlled times: whole UTC days from the daily totals,
// partial days from the records. Run on each database (test/usage.test.ts, test/history-postgres.test.ts).
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from '../helper.ts'
import { sendJson } from './http.ts'
import { record, type DatabaseEnv } from './history-records.ts'
import { historyInternals } from '../../src/history/plugin.ts'

const USAGE = `query ($from: DateTime!, $to: DateTime!, $groupBy: UsageGrouping) {
  usage(from: $from, to: $to, groupBy: $groupBy) { key identifications failed cached promptTokens completionTokens estimatedCost }
}`

export async function usage (app: FastifyInstance, variables: Record<string, unknown>, headers: Record<string, string> = {}) {
  return (await sendJson(app, { query: USAGE, variables }, headers)).body
}

export function usageCases (t: Test, databaseEnv: DatabaseEnv): void {
  t.test('whole days from the daily totals, partial days from the records, exact at the edges', async t => {
    const app = await buildTestApp(t, { env: await databaseEnv(t) })
    const store = historyInternals(app.history!).store
    const at = (iso: string) => new Date(iso)
    for (const createdAt of ['2026-11-01T00:00:00.000Z', '2026-11-01T12:00:00.000Z', '2026-11-02T23:59:59.999Z', '2026-11-03T06:00:00.000Z']) {
      await store.insert(record({ createdAt: at(createdAt) }))
    }
    await store.insert(record({ createdAt: at('2026-11-02T10:00:00.000Z'), outcome: 'UPSTREAM_TIMEOUT', model: null, promptTokens: 0, completionTokens: 0 }))
    await store.insert(record({ createdAt: at('2026-11-02T11:00:00.000Z'), cached: true, promptTokens: 0, completionTokens: 0 }))

    const whole = await usage(app, { from: '2026-11-01T00:00:00Z', to: '2026-11-04T00:00:00Z' })
    t.strictSame(whole.data.usage.map((b: any) => [b.key, b.identifications, b.failed, b.cached, b.promptTokens, b.completionTokens]), [
      ['2026-11-01', 2, 0, 0, 200, 20],
      ['2026-11-02', 3, 1, 1, 100, 10],
      ['2026-11-03', 1, 0, 0, 100, 10]
    ])
    t.equal(whole.data.usage[0].estimatedCost, null, 'no prices set: no cost')

    const partial = await usage(app, { from: '2026-11-01T06:00:00Z', to: '2026-11-03T06:00:00Z' })
    t.strictSame(partial.data.usage.map((b: any) => [b.key, b.identifications]), [['2026-11-01', 1], ['2026-11-02', 3]],
      'from 06:00 leaves out the midnight record; to is exclusive')
    const hour = await usage(app, { from: '2026-11-02T23:00:00Z', to: '2026-11-03T00:00:00Z' })
    t.strictSame(hour.data.usage.map((b: any) => [b.key, b.identifications]), [['2026-11-02', 1]], 'within one day')
    const overMidnight = await usage(app, { from: '2026-11-02T23:00:00Z', to: '2026-11-03T07:00:00Z' })
    t.strictSame(overMidnight.data.usage.map((b: any) => [b.key, b.identifications]), [['2026-11-02', 1], ['2026-11-03', 1]],
      'a range over midnight and no whole day: each record in its own day')

    const byModel = await usage(app, { from: '2026-11-01T00:00:00Z', to: '2026-11-04T00:00:00Z', groupBy: 'MODEL' })
    t.strictSame(byModel.data.usage.map((b: any) => [b.key, b.identifications, b.failed]), [['', 1, 1], ['gpt-4o', 5, 0]])

    for (const variables of [{ from: '2026-11-02T00:00:00Z', to: '2026-11-01T00:00:00Z' }, { from: '2024-01-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }]) {
      t.equal((await usage(app, variables)).errors?.[0]?.extensions.code, 'BAD_USER_INPUT', JSON.stringify(variables))
    }
  })
}
