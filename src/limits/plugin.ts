// The process's shared limits as one plugin: the vision slots every identification takes, whatever its
// entry point (`app.limits.admission`), and the upload bytes the HTTP layer reserves before it reads a
// body (`app.limits.uploads`), with their metrics. It takes its settings, not the whole Config.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../metrics/registry.ts'
import { AdmissionGate } from './admission.ts'
import type { OverloadConfig } from './config.ts'
import { limitsMetrics } from './metrics.ts'
import { UploadBudget } from './receiving.ts'

export interface Limits {
  /** Vision slots: taken by the identification flow for its work. */
  admission: AdmissionGate
  /** Upload bytes in flight, per caller and in total: reserved by the HTTP layer before a body is read. */
  uploads: UploadBudget
}

declare module 'fastify' {
  interface FastifyInstance {
    limits: Limits
  }
}

export interface LimitsPluginOptions {
  overload: Pick<OverloadConfig, 'maxConcurrency' | 'maxConcurrencyPerCaller' | 'queueSize' | 'queueTimeoutMs' |
    'uploadBytesInFlight' | 'uploadBytesInFlightPerCaller'>
  /** UPLOAD_IDLE_TIMEOUT_MS: a refused upload is told to come back after about the time a stalled one is cut off. */
  uploadIdleTimeoutMs: number
  /** The background lane's slots (bulk jobs: BULK_MAX_CONCURRENCY), beside VISION_MAX_CONCURRENCY. */
  backgroundConcurrency?: number
  metrics: Metrics
}

async function limitsPlugin (app: FastifyInstance, options: LimitsPluginOptions): Promise<void> {
  const { overload, uploadIdleTimeoutMs, backgroundConcurrency = 0, metrics } = options
  const measured = limitsMetrics(metrics)
  const { maxConcurrency, maxConcurrencyPerCaller, queueSize, queueTimeoutMs } = overload
  const admission = new AdmissionGate(
    { maxConcurrency, maxConcurrencyPerCaller, queueSize, queueTimeoutMs, backgroundConcurrency }, measured.admission)
  const uploads = new UploadBudget({
    maxBytes: overload.uploadBytesInFlight,
    maxBytesPerCaller: overload.uploadBytesInFlightPerCaller,
    retryAfterSeconds: Math.max(1, Math.ceil(uploadIdleTimeoutMs / 1000))
  }, measured.uploadRefused)
  measured.watch(admission, uploads)
  app.decorate('limits', { admission, uploads })
}

export default fp(limitsPlugin, { name: 'limits', fastify: '5.x' })
