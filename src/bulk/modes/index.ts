// The modes a job may run in, by name. GLOBAL_BATCH is added here by ./global-batch.ts when it is built; a job
// whose mode has no runner on this instance runs ONLINE (src/bulk/worker.ts).
import type { FastifyBaseLogger } from 'fastify'
import type { VisionService } from '../../vision/types.ts'
import type { BulkConfig } from '../config.ts'
import type { BulkModeName } from '../tables.ts'
import type { BulkModeRunner } from './mode.ts'
import { onlineMode } from './online.ts'

export interface ModeDeps {
  config: BulkConfig
  vision: VisionService
  log: FastifyBaseLogger
}

export function createModes ({ config }: ModeDeps): Partial<Record<BulkModeName, BulkModeRunner>> {
  return {
    ONLINE: onlineMode({ concurrency: config.maxConcurrency })
  }
}
