// The modes a job may run in, by name: ONLINE always, GLOBAL_BATCH when a batch deployment is configured and the
// vision service has Azure's token. A job whose mode has no runner on this instance runs ONLINE (src/bulk/worker.ts).
import type { FastifyBaseLogger } from 'fastify'
import type { VisionService } from '../../vision/types.ts'
import type { Confidence } from '../../vision/answer-schema.ts'
import type { BulkConfig } from '../config.ts'
import type { BulkModeName } from '../tables.ts'
import type { BulkModeRunner } from './mode.ts'
import { onlineMode } from './online.ts'
import { globalBatchMode } from './global-batch.ts'
import { BulkFiles } from '../files.ts'
import { join } from 'node:path'

export interface ModeDeps {
  config: BulkConfig
  vision: VisionService
  log: FastifyBaseLogger
  /** VISION_MAX_TOKENS: each Global Batch line's max_tokens, as online (default 1,000). */
  maxTokens?: number
  /** VISION_ADAPTIVE_MIN_CONFIDENCE: ADAPTIVE jobs' rule for a second look, as online (default MEDIUM). */
  adaptiveMinConfidence?: Confidence
}

export function createModes ({ config, vision, log, maxTokens, adaptiveMinConfidence = 'MEDIUM' }: ModeDeps): Partial<Record<BulkModeName, BulkModeRunner>> {
  const modes: Partial<Record<BulkModeName, BulkModeRunner>> = {
    ONLINE: onlineMode({ concurrency: config.maxConcurrency })
  }
  const accessToken = vision.accessToken
  if (config.globalBatch !== null && accessToken !== undefined) {
    const files = new BulkFiles(config.dir)
    modes.GLOBAL_BATCH = globalBatchMode({
      batch: config.globalBatch,
      getToken: async () => await accessToken(),
      maxTokens: maxTokens ?? 1000,
      pollIntervalMs: config.pollIntervalMs,
      chunkDir: jobId => join(files.jobDir(jobId), 'chunks'),
      onlineConcurrency: config.maxConcurrency,
      adaptiveMinConfidence
    })
  } else if (config.globalBatch !== null) {
    log.warn('bulk: AZURE_OPENAI_BATCH_DEPLOYMENT is set but the vision backend has no Azure token: jobs run ONLINE')
  }
  return modes
}
