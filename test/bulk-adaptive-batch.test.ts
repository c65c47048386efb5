// ADAPTIVE detail in GLOBAL_BATCH jobs on SQLite (the cases: test/support/adaptive-batch-cases.ts).
import t from 'tap'
import { adaptiveBatchCases } from './support/adaptive-batch-cases.ts'

await adaptiveBatchCases(t)
