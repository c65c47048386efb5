// What the history tests share: a realistic record with controlled fields, and how a case gets its database.
import type { Test } from 'tap'
import type { HistoryRecord } from '../../src/history/records.ts'

/** The environment of one test's app: its own database (a temporary DATA_DIR, or a fresh PostgreSQL database). */
export type DatabaseEnv = (t: Test) => Promise<Record<string, string>>

export function record (overrides: Partial<HistoryRecord>): HistoryRecord {
  return {
    id: crypto.randomUUID(),
    callerId: 'anonymous', // the caller of an app with AUTH_MODE=none
    callerKind: 'anonymous',
    createdAt: new Date(),
    outcome: 'OK',
    cached: false,
    language: 'ru',
    detail: 'auto',
    backend: 'AZURE_OPENAI',
    model: 'gpt-4o',
    backendName: 'default',
    answer: 'Трактор',
    vehicles: [{ category: 'TRACTOR', kind: 'MACHINE', make: 'Беларус', model: '82.1', confidence: 'HIGH', evidence: ['badge'] }],
    image: null,
    promptTokens: 100,
    completionTokens: 10,
    durationMs: 5,
    cacheKey: null,
    ...overrides
  }
}
