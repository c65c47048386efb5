// History's migrations, under the names already stored (Kysely compares them with the stored rows: never rename one).
// Listed here rather than read from a folder at run time, so that the set is fixed by the code and a stray file cannot become a migration.
import type { Migration } from 'kysely'
import * as history0001 from './0001-history.ts'
import * as backendName0003 from './0003-backend-name.ts'
import * as thumbnailsCreated0004 from './0004-thumbnails-created.ts'
import * as identificationsBulkJob0006 from './0006-identifications-bulk-job.ts'
import * as identificationsBatch0007 from './0007-identifications-batch.ts'

export const HISTORY_MIGRATIONS: Record<string, Migration> = {
  '0001-history': history0001,
  '0003-backend-name': backendName0003,
  '0004-thumbnails-created': thumbnailsCreated0004,
  '0006-identifications-bulk-job': identificationsBulkJob0006,
  '0007-identifications-batch': identificationsBatch0007
}
