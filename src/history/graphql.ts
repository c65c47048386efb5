// History's part of the GraphQL API (history.graphql): who may see what, the arguments checked, then app.history.
// Registered even with HISTORY=off (the schema does not change): its fields then fail with STORAGE_UNAVAILABLE.
import { readFileSync } from 'node:fs'
import type { Caller } from '../callers/caller.ts'
import { ANONYMOUS, requireRole } from '../callers/caller.ts'
import { BadUserInputError, ForbiddenError, StorageUnavailableError } from '../errors.ts'
import type { GraphqlPart } from '../graphql/registry.ts'
import type { AppContext } from '../graphql/context.ts'
import type { QueryResolvers, MutationResolvers } from '../graphql/generated/schema-types.ts'
import type { History, UsageTotals } from './public.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import { makeKey } from './records.ts'

export const MAX_PAGE_SIZE = 100

const SDL = readFileSync(new URL('./history.graphql', import.meta.url), 'utf8')

/** `production`: anonymous callers (AUTH_MODE=none) are refused history there. */
export function historyGraphql (options: { production: boolean }): GraphqlPart {
  return {
    name: 'history',
    sdl: SDL,
    resolvers: { Query: historyQueries(options), Mutation: historyMutations(options) } as GraphqlPart['resolvers']
  }
}

/**
 * The history and whose records the caller may read: its own (null = everyone's with ReadAll).
 * Anonymous callers (AUTH_MODE=none) share one id, so they see one shared history, and only outside production.
 */
function access (ctx: AppContext, production: boolean): { history: History, caller: Caller, ownerFilter: string | null } {
  const history = ctx.request.server.history
  if (history === null) throw new StorageUnavailableError('History is off on this server (HISTORY=off).', undefined)
  const caller = ctx.caller ?? ANONYMOUS
  if (caller.kind === 'anonymous' && production) {
    throw new ForbiddenError('History needs a signed-in caller: anonymous callers share one identity.')
  }
  return { history, caller, ownerFilter: caller.roles.has('ReadAll') ? null : caller.id }
}

const historyQueries = ({ production }: { production: boolean }): Pick<QueryResolvers, 'identification' | 'identifications' | 'usage'> => ({
  identification: async (_root, { id }, ctx) => {
    const { history, ownerFilter } = access(ctx, production)
    if (id.length > 64) return null
    await history.recordWritten(id, ownerFilter) // the caller's own answer of a moment ago is found
    return await history.get(id, ownerFilter) ?? null
  },

  identifications: async (_root, { first, after, filter }, ctx) => {
    const { history, caller, ownerFilter } = access(ctx, production)
    const size = first ?? 20
    if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
      throw new BadUserInputError(`\`first\` must be between 1 and ${MAX_PAGE_SIZE}.`, { argument: 'first' })
    }
    let callerId = ownerFilter
    if (filter?.caller != null) {
      requireRole(caller, 'ReadAll')
      callerId = filter.caller
    }
    const make = filter?.make == null ? null : makeKey(filter.make)
    if (make === '') throw new BadUserInputError('`filter.make` is blank.', { argument: 'filter.make' })
    const position = after == null ? null : decodeCursor(after)
    const { rows, hasNextPage } = await history.list({
      callerId,
      category: filter?.category ?? null,
      make,
      from: filter?.from ?? null,
      to: filter?.to ?? null,
      bulkJobId: filter?.bulkJobId ?? null
    }, size, position)
    const edges = rows.map(node => ({ cursor: encodeCursor({ createdAt: node.createdAt.getTime(), id: node.id }), node }))
    return {
      edges,
      pageInfo: { hasNextPage, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null }
    }
  },

  usage: async (_root, { from, to, groupBy }, ctx) => {
    const { history, ownerFilter } = access(ctx, production)
    if (to.getTime() <= from.getTime()) throw new BadUserInputError('`to` must be after `from`.', { argument: 'to' })
    if (to.getTime() - from.getTime() > 366 * 86_400_000) {
      throw new BadUserInputError('A usage range spans at most 366 days.', { argument: 'to' })
    }
    const buckets = await history.usage(from, to, ownerFilter, groupBy ?? 'DAY')
    return buckets.map(bucket => ({ ...bucket, estimatedCost: estimatedCost(bucket, history.prices, history.batchPrices) }))
  }
})

const historyMutations = ({ production }: { production: boolean }): Pick<MutationResolvers, 'deleteIdentification'> => ({
  deleteIdentification: async (_root, { id }, ctx) => {
    const { history, ownerFilter } = access(ctx, production)
    if (id.length > 64) return false
    await history.recordWritten(id, ownerFilter) // the caller's own answer of a moment ago can be deleted
    return await history.delete(id, ownerFilter)
  }
})

type Prices = { inputPerMillion: number, outputPerMillion: number } | null

/**
 * Online tokens at the online prices, a Global Batch's at the batch prices, rounded to a millionth; null when a
 * price the bucket's tokens need is not set.
 */
function estimatedCost (bucket: UsageTotals, prices: Prices, batchPrices: Prices): number | null {
  const onlinePrompt = bucket.promptTokens - bucket.batchPromptTokens
  const onlineCompletion = bucket.completionTokens - bucket.batchCompletionTokens
  const costAt = (p: Prices, prompt: number, completion: number): number | null =>
    prompt === 0 && completion === 0 ? 0 : p === null ? null : prompt * p.inputPerMillion + completion * p.outputPerMillion
  if (prices === null && batchPrices === null) return null
  const online = costAt(prices, onlinePrompt, onlineCompletion)
  const batch = costAt(batchPrices, bucket.batchPromptTokens, bucket.batchCompletionTokens)
  if (online === null || batch === null) return null
  return Math.round((online + batch) / 1e6 * 1e6) / 1e6
}
