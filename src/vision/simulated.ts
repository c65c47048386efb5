// The embedded default backend: calls no model and says so. It lets a fresh clone serve the
// whole API with no Azure at all, and reports only what it can honestly measure.
import { setTimeout as sleep } from 'node:timers/promises'
import type { IdentifyRequest, IdentifyResult, VisionService, VisionStatus } from './types.ts'

export const SIMULATED_MODEL = 'simulated'

export interface SimulatedVisionOptions {
  /** Artificial latency per call, for load tests and benchmarks. */
  latencyMs?: number
}

export function createSimulatedVision (options: SimulatedVisionOptions = {}): VisionService {
  const latencyMs = options.latencyMs ?? 0
  return {
    backend: 'SIMULATED',
    async identify (request: IdentifyRequest): Promise<IdentifyResult> {
      if (latencyMs > 0) await sleep(latencyMs, undefined, { signal: request.signal })
      return { answer: simulatedAnswer(request), model: SIMULATED_MODEL, usage: null, upstreamStatus: null }
    },
    status (): VisionStatus {
      return { backend: 'SIMULATED', deployment: null, ready: true }
    }
  }
}

export function simulatedAnswer (request: Pick<IdentifyRequest, 'mimeType' | 'image' | 'width' | 'height' | 'language'>): string {
  const kind = request.mimeType.slice('image/'.length).toUpperCase()
  return '[SIMULATED] No vision model was called, so the vehicle was not identified. ' +
    `Received a ${request.width}×${request.height} ${kind} image of ${request.image.length} bytes; ` +
    `the answer would be in language "${request.language}". ` +
    'Set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT to use an Azure OpenAI deployment.'
}
