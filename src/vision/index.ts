// Picks the vision backend from the configuration: Azure OpenAI when an endpoint is set, else simulated.
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import { createTokenProvider } from '../azure/credential.ts'
import { createAzureVision } from './azure.ts'
import { createSimulatedVision } from './simulated.ts'
import type { VisionService } from './types.ts'

export function createVision (config: Config, log: FastifyBaseLogger, env: NodeJS.ProcessEnv = process.env): VisionService {
  const azure = config.vision.azure
  if (azure === null) {
    log.warn('vision backend: SIMULATED, no model is called. Set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT (or VISION_BACKEND=azure) to use Azure OpenAI.')
    return createSimulatedVision()
  }
  log.info({ endpoint: azure.endpoint, deployment: azure.deployment, apiVersion: azure.apiVersion, scope: azure.scope }, 'vision backend: AZURE_OPENAI')
  const tokens = createTokenProvider(azure, log.child({ component: 'token-provider' }), env)
  return createAzureVision({ azure, tokens, timeoutMs: config.vision.timeoutMs, maxTokens: config.vision.maxTokens, log: log.child({ component: 'azure-openai' }) })
}
