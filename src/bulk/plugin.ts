// Bulk jobs as a feature: hands its migrations to app.database and its item outcomes to history's record
// transaction, its GraphQL part to the registry, its worker to app.workers. Needs history (a job's items are
// identifications in it); with HISTORY=off `app.bulk` is null and its fields fail with STORAGE_UNAVAILABLE.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { VisionService } from '../vision/types.ts'
import type { BulkConfig } from './config.ts'
import { BULK_MIGRATIONS } from './migrations/index.ts'
import { bulkRecordHook } from './record-hook.ts'

export interface BulkPluginOptions {
  config: BulkConfig
  vision: VisionService
  /** HISTORY_RETENTION_DAYS: finished jobs are kept as long as their identifications. */
  retentionDays: number
}

async function bulkPlugin (app: FastifyInstance, _options: BulkPluginOptions): Promise<void> {
  const history = app.history
  const database = app.database
  if (history === null || database === null) return
  database.registerMigrations('bulk', BULK_MIGRATIONS)
  history.onRecordTransaction(bulkRecordHook)
}

export default fp(bulkPlugin, { name: 'bulk', fastify: '5.x', dependencies: ['workers', 'database', 'history', 'identification', 'graphql-registry'] })
