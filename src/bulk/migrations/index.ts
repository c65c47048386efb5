// Bulk jobs' migrations, under their stored names (global across features: never renamed).
import type { Migration } from 'kysely'
import * as bulkJobs0005 from './0005-bulk-jobs.ts'

export const BULK_MIGRATIONS: Record<string, Migration> = {
  '0005-bulk-jobs': bulkJobs0005
}
