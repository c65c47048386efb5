// The managed identity as a capability: `app.azureTokens`, the process's one credential with a cached token per
// scope (tokens.ts), or null when nothing needs a token. Its metrics: token fetches and failures, in total (the
// names dashboards already have) and per scope.
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../metrics/registry.ts'
import type { AzureTokens } from './tokens.ts'
import type { TokenStats } from './token-provider.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The credential's tokens, one cache per scope; null when nothing uses a managed identity. */
    azureTokens: AzureTokens | null
  }
}

export interface AzureIdentityPluginOptions {
  tokens: AzureTokens | null
  metrics: Metrics
  /** Counters kept by a vision service with its own provider (a test's), used when `tokens` is null. */
  fallbackStats?: () => Pick<TokenStats, 'fetches' | 'failures'> | undefined
}

async function azureIdentityPlugin (app: FastifyInstance, { tokens, metrics, fallbackStats }: AzureIdentityPluginOptions): Promise<void> {
  app.decorate('azureTokens', tokens)
  const totals = (): Pick<TokenStats, 'fetches' | 'failures'> | undefined => tokens?.totals() ?? fallbackStats?.()
  // Always there, 0 without a credential (the simulated backend): dashboards keep their series.
  metrics.counterFrom('agrivision_token_fetches_total', 'Entra ID token fetches, every scope.', () => totals()?.fetches ?? 0)
  metrics.counterFrom('agrivision_token_fetch_failures_total', 'Failed Entra ID token fetches (timeouts included), every scope.', () => totals()?.failures ?? 0)
  perScope(metrics, 'agrivision_token_fetches_by_scope_total', 'Entra ID token fetches per scope.', tokens, stats => stats.fetches)
  perScope(metrics, 'agrivision_token_fetch_failures_by_scope_total', 'Failed Entra ID token fetches per scope (timeouts included).', tokens, stats => stats.failures)
}

function perScope (metrics: Metrics, name: string, help: string, tokens: AzureTokens | null, read: (stats: TokenStats) => number): void {
  // eslint-disable-next-line no-new -- registering is the point
  new Counter({
    name,
    help,
    labelNames: ['scope'] as const,
    registers: [metrics.registry],
    collect () {
      this.reset()
      for (const { scope, stats } of tokens?.statsByScope() ?? []) this.inc({ scope }, read(stats))
    }
  })
}

export default fp(azureIdentityPlugin, { name: 'azure-identity', fastify: '5.x' })
