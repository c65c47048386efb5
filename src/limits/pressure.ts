// Under pressure (event-loop delay, heap, RSS): /health/ready turns 503 so the load balancer sends
// traffic elsewhere, and new identifications are refused with OVERLOADED. Everything else goes on.
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import { OverloadedError } from '../errors.ts'
import { sendError } from '../http/send-error.ts'
import type { Metrics } from '../metrics/registry.ts'
import { isUploadRequest } from '../http/requests.ts'
import type { OverloadConfig } from './config.ts'

const RETRY_AFTER_SECONDS = 5

export interface PressurePluginOptions {
  /** The PRESSURE_* thresholds (0: not watched). */
  overload: Pick<OverloadConfig, 'maxEventLoopDelayMs' | 'maxHeapUsedBytes' | 'maxRssBytes'>
  metrics: Metrics
}

async function pressure (app: FastifyInstance, { overload, metrics }: PressurePluginOptions): Promise<void> {
  await app.register(underPressure, {
    maxEventLoopDelay: overload.maxEventLoopDelayMs,
    maxHeapUsedBytes: overload.maxHeapUsedBytes,
    maxRssBytes: overload.maxRssBytes,
    pressureHandler: (request, reply, type) => {
      if (!isUploadRequest(request)) return // handled as usual
      metrics.refusals.inc({ reason: 'pressure' })
      const err = new OverloadedError(`The service is under pressure (${type}). Try again in ${RETRY_AFTER_SECONDS} s.`, RETRY_AFTER_SECONDS)
      sendError(reply.header('connection', 'close'), err)
    }
  })
}

export default fp(pressure, { name: 'pressure', fastify: '5.x' })
