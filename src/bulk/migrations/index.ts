// Bulk jobs' migrations, under their stored names (global across features: never renamed).
import type { Migration } from 'kysely'
import * as bulkJobs0005 from './0005-bulk-jobs.ts'
import * as bulkAdaptive0008 from './0008-bulk-adaptive.ts'

export const BULK_MIGRATIONS: Record<string, Migration> = {
  '0005-bulk-jobs': bulkJobs0005,
  '0008-bulk-adaptive': bulkAdaptive0008
}
