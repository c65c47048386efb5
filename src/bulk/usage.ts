// What a job's answered items used, and what they cost at the prices of its mode (BulkJob.usage).
import type { BulkJobView } from './public.ts'

export interface BulkUsage {
  promptTokens: number
  completionTokens: number
  /** null when no prices are set. */
  estimatedCost: number | null
}

export function usageOf (
  job: Pick<BulkJobView, 'promptTokens' | 'completionTokens'>, prices: { inputPerMillion: number, outputPerMillion: number } | null
): BulkUsage {
  const estimatedCost = prices === null
    ? null
    : (job.promptTokens * prices.inputPerMillion + job.completionTokens * prices.outputPerMillion) / 1_000_000
  return { promptTokens: job.promptTokens, completionTokens: job.completionTokens, estimatedCost }
}
