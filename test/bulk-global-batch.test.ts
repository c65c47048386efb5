// GLOBAL_BATCH bulk jobs end to end on SQLite (the cases: test/support/global-batch-cases.ts).
import t from 'tap'
import { globalBatchCases } from './support/global-batch-cases.ts'

await globalBatchCases(t)
