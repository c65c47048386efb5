// Webhooks' migrations, under the names already stored (never rename one).
import type { Migration } from 'kysely'
import * as webhooks0002 from './0002-webhooks.ts'

export const WEBHOOKS_MIGRATIONS: Record<string, Migration> = { '0002-webhooks': webhooks0002 }
