// Picks the vision backend from the configuration: Azure OpenAI when an endpoint is set, else simulated.
import type { FastifyBaseLogger } from 'fastify'
import type { AzureConfig } from '../azure/config.ts'
import type { VisionConfig } from './config.ts'
import { createAzureTokens } from '../azure/credential.ts'
import type { AzureTokens } from '../azure/tokens.ts'
import { createAzureVision } from './azure.ts'
import { createSimulatedVision } from './simulated.ts'
import type { VisionService } from './types.ts'

/**
 * `config`: the app's Config or anything with its vision and azure slices. `azureTokens`: the process's credential
 * when it is already made (one credential per process); otherwise one is made here, which the app then shares.
 */
export function createVision (
  config: { vision: VisionConfig, azure: AzureConfig | null }, log: FastifyBaseLogger, env: NodeJS.ProcessEnv = process.env,
  azureTokens?: AzureTokens
): VisionService {
  const azure = config.azure
  if (azure === null) {
    log.warn('vision backend: SIMULATED, no model is called. Set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT, or AZURE_OPENAI_BACKENDS, to use Azure OpenAI.')
    return createSimulatedVision()
  }
  const backends = azure.backends.map(({ name, endpoint, deployment, apiVersion, priority, weight }) =>
    ({ name, endpoint, deployment, apiVersion, priority, weight }))
  log.info({ backends, scope: azure.scope }, `vision backend: AZURE_OPENAI (${backends.length} deployment${backends.length === 1 ? '' : 's'})`)
  // One credential and one cached token for every deployment: the scope is the same.
  const credential = azureTokens ?? createAzureTokens(azure, log.child({ component: 'token-provider' }), env)
  const tokens = credential.forScope(azure.scope, 'vision')
  const { timeoutMs, attemptTimeoutMs, maxTokens, breakerFailures, breakerCoolDownMs } = config.vision
  return createAzureVision({
    azure,
    tokens,
    azureTokens: credential,
    timeoutMs,
    ...(attemptTimeoutMs === null ? {} : { attemptTimeoutMs }),
    maxTokens,
    breakerFailures,
    breakerCoolDownMs,
    log: log.child({ component: 'azure-openai' })
  })
}
