// Bulk jobs on SQLite: the shared cases (test/support/bulk-cases.ts).
import t from 'tap'
import { tempDataDir } from './helper.ts'
import { bulkCases } from './support/bulk-cases.ts'

bulkCases(t, async () => ({}), tempDataDir)
