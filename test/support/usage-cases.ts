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
  t.test('a Global Batch\'s tokens counted apart and priced at the batch prices; online ones (an ONLINE job, a retry) at the online prices', async t => {
    const app = await buildTestApp(t, {
      env: {
        ...await databaseEnv(t),
        VISION_PRICE_INPUT_PER_MTOK: '10',
        VISION_PRICE_OUTPUT_PER_MTOK: '20',
        VISION_BATCH_PRICE_INPUT_PER_MTOK: '4',
        VISION_BATCH_PRICE_OUTPUT_PER_MTOK: '8'
      }
    })
    const store = historyInternals(app.history!).store
    const at = (iso: string) => new Date(iso)
    await store.insert(record({ createdAt: at('2026-11-05T10:00:00Z'), bulkJobId: 'online-job', promptTokens: 100, completionTokens: 10 }))
    await store.insert(record({ createdAt: at('2026-11-05T11:00:00Z'), bulkJobId: 'batch-job', batch: true, promptTokens: 1000, completionTokens: 100 }))
    await store.insert(record({ createdAt: at('2026-11-05T12:00:00Z'), bulkJobId: 'batch-job', promptTokens: 100, completionTokens: 10 }))
    await store.insert(record({ createdAt: at('2026-11-05T13:00:00Z'), promptTokens: 100, completionTokens: 10 }))

    const daily = await store.db.selectFrom('usage_daily').selectAll().execute()
    const tokensOf = (row: typeof daily[number]) =>
      [row.prompt_tokens, row.completion_tokens, row.batch_prompt_tokens, row.batch_completion_tokens].map(Number)
    t.strictSame(daily.map(tokensOf), [[1300, 130, 1000, 100]], 'the batch columns hold the Global Batch tokens only; the totals every token')
    const flags = await store.db.selectFrom('identifications').select(['prompt_tokens', 'batch']).orderBy('created_at').execute()
    t.strictSame(flags.map(row => Number(row.batch)), [0, 1, 0, 0])

    // 300 online prompt × 10 + 30 online completion × 20 + 1000 batch prompt × 4 + 100 batch completion × 8, per million.
    const expected = ['2026-11-05', 4, 1300, 130, 1000, 100, (300 * 10 + 30 * 20 + 1000 * 4 + 100 * 8) / 1e6]
    const query = `query ($from: DateTime!, $to: DateTime!) {
      usage(from: $from, to: $to) { key identifications promptTokens completionTokens batchPromptTokens batchCompletionTokens estimatedCost }
    }`
    const row = (b: any) =>
      [b.key, b.identifications, b.promptTokens, b.completionTokens, b.batchPromptTokens, b.batchCompletionTokens, b.estimatedCost]
    for (const [from, to, what] of [
      ['2026-11-05T00:00:00Z', '2026-11-06T00:00:00Z', 'a whole day: from usage_daily'],
      ['2026-11-05T09:00:00Z', '2026-11-05T14:00:00Z', 'part of a day: from the records']
    ] as const) {
      const body = (await sendJson(app, { query, variables: { from, to } })).body
      t.strictSame(body.data.usage.map(row), [expected], what)
    }
    const onlineOnly = (await sendJson(app, { query, variables: { from: '2026-11-05T12:00:00Z', to: '2026-11-05T14:00:00Z' } })).body
    t.strictSame(onlineOnly.data.usage.map(row), [['2026-11-05', 2, 200, 20, 0, 0, (200 * 10 + 20 * 20) / 1e6]], 'online tokens only: online prices')
  })
}
