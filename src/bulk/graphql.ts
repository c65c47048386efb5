// Bulk jobs' part of the GraphQL API (bulk.graphql): who may see and cancel which job, the arguments checked, then
// app.bulk. Registered even with HISTORY=off (the schema does not change): its fields then fail with STORAGE_UNAVAILABLE.
import { readFileSync } from 'node:fs'
import type { IResolvers } from 'mercurius'
import { ANONYMOUS, requireRole, type Caller } from '../callers/caller.ts'
import { BadUserInputError, ForbiddenError, InternalServerError, StorageUnavailableError } from '../errors.ts'
import type { AppContext } from '../graphql/context.ts'
import type { GraphqlPart } from '../graphql/registry.ts'
import type { Upload } from '../graphql/upload.ts'
import type { RequestedDetail } from '../image/tokens.ts'
import {
  decodeItemCursor, decodeJobCursor, encodeItemCursor, encodeJobCursor, readDetail, readInstructions, readLanguage, readPageSize
} from './arguments.ts'
import type { BulkItemStatus, BulkJobs, BulkJobView } from './public.ts'
import type { BulkItemRow } from './store.ts'

const SDL = readFileSync(new URL('./bulk.graphql', import.meta.url), 'utf8')

/** Most files in `images`. */
export const MAX_IMAGES = 100

export interface BulkGraphqlOptions {
  production: boolean
  /** VISION_LANGUAGE and VISION_IMAGE_DETAIL: the defaults of the question. */
  language: string
  detail: RequestedDetail
}

function access (ctx: AppContext, production: boolean): { bulk: BulkJobs, caller: Caller } {
  const bulk = ctx.request.server.bulk
  if (bulk === null) throw new StorageUnavailableError('Bulk jobs need history, which is off on this server (HISTORY=off).', undefined)
  const caller = ctx.caller ?? ANONYMOUS
  if (caller.kind === 'anonymous' && production) throw new ForbiddenError('Bulk jobs need a signed-in caller: anonymous callers share one identity.')
  return { bulk, caller }
}

const pageInfo = (cursors: string[], hasNextPage: boolean) =>
  ({ hasNextPage, hasPreviousPage: false, startCursor: cursors[0] ?? null, endCursor: cursors.at(-1) ?? null })

export function bulkGraphql ({ production, language, detail }: BulkGraphqlOptions): GraphqlPart {
  const resolvers = {
    Mutation: {
      createBulkJob: async (_root: unknown, args: {
        archive?: Upload | null, images?: Upload[] | null, instructions?: string | null, language?: string | null, detail?: string | null
      }, ctx: AppContext): Promise<BulkJobView> => {
        const { bulk, caller } = access(ctx, production)
        requireRole(caller, 'Identify')
        const images = args.images ?? null
        const archive = args.archive ?? null
        if ((archive === null) === (images === null || images.length === 0)) {
          throw new BadUserInputError('Send exactly one of `archive` (a ZIP of photos) and `images` (1 to 100 photos).', { argument: 'archive' })
        }
        if (images !== null && images.length > MAX_IMAGES) {
          throw new BadUserInputError(`\`images\` holds at most ${MAX_IMAGES} files: send more as a ZIP \`archive\`.`, { argument: 'images' })
        }
        const question = {
          instructions: readInstructions(args.instructions),
          language: readLanguage(args.language, language),
          detail: readDetail(args.detail, detail)
        }
        const stored = (upload: Upload) => {
          if (upload.file === null) throw new InternalServerError('A bulk upload was not received to disk.')
          return upload.file
        }
        const source = archive !== null ? { archive: stored(archive) } : { images: (images ?? []).map(stored) }
        return await bulk.create(caller, { source, ...question })
      },
      cancelBulkJob: async (_root: unknown, { id }: { id: string }, ctx: AppContext) => {
        const { bulk, caller } = access(ctx, production)
        if (id.length > 64) return null
        return await bulk.cancel(id, caller.roles.has('Admin') ? null : caller.id) ?? null
      }
    },
    Query: {
      bulkJob: async (_root: unknown, { id }: { id: string }, ctx: AppContext) => {
        const { bulk, caller } = access(ctx, production)
        if (id.length > 64) return null
        return await bulk.get(id, caller.roles.has('ReadAll') ? null : caller.id) ?? null
      },
      bulkJobs: async (_root: unknown, { first, after }: { first?: number | null, after?: string | null }, ctx: AppContext) => {
        const { bulk, caller } = access(ctx, production)
        const size = readPageSize(first)
        if (after != null) decodeJobCursor(after) // a bad cursor is BAD_USER_INPUT before any query
        const { rows, hasNextPage } = await bulk.list(caller.roles.has('ReadAll') ? null : caller.id, size, after ?? null)
        const edges = rows.map(node => ({ cursor: encodeJobCursor(node.createdAt.getTime(), node.id), node }))
        return { edges, pageInfo: pageInfo(edges.map(edge => edge.cursor), hasNextPage) }
      }
    },
    BulkJob: {
      counts: async (job: BulkJobView, _args: unknown, ctx: AppContext) => await access(ctx, production).bulk.counts(job.id),
      usage: (job: BulkJobView, _args: unknown, ctx: AppContext) => {
        const prices = access(ctx, production).bulk.priceOf(job.mode)
        const cost = prices === null
          ? null
          : (job.promptTokens * prices.inputPerMillion + job.completionTokens * prices.outputPerMillion) / 1_000_000
        return { promptTokens: job.promptTokens, completionTokens: job.completionTokens, estimatedCost: cost }
      },
      items: async (
        job: BulkJobView, args: { first?: number | null, after?: string | null, status?: BulkItemStatus | null }, ctx: AppContext
      ) => {
        const { bulk } = access(ctx, production)
        const size = readPageSize(args.first)
        const afterSeq = args.after == null ? null : decodeItemCursor(args.after)
        const { rows, hasNextPage } = await bulk.items(job.id, size, afterSeq, args.status ?? null)
        const edges = rows.map(row => ({ cursor: encodeItemCursor(Number(row.seq)), node: row }))
        return { edges, pageInfo: pageInfo(edges.map(edge => edge.cursor), hasNextPage) }
      }
    },
    BulkItem: {
      identification: async (item: BulkItemRow, _args: unknown, ctx: AppContext) => {
        const history = ctx.request.server.history
        if (item.status !== 'SUCCEEDED' || history === null) return null
        return await history.get(item.id, null) ?? null // the job's visibility was checked on the way here
      }
    }
  }
  return { name: 'bulk', sdl: SDL, resolvers: resolvers as unknown as IResolvers }
}
