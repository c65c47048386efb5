// The subscription: who may watch what (as history decides it: own, or everyone's with ReadAll), the
// filter checked, then app.subscriptions streams the completed identifications that match.
import { ANONYMOUS, requireRole } from '../callers/caller.ts'
import { BadUserInputError, UnauthenticatedError } from '../errors.ts'
import type { AppContext } from '../graphql/context.ts'
import type { IdentificationFilter, SubscriptionResolvers } from '../graphql/generated/schema-types.ts'
import type { MercuriusContext } from 'mercurius'
import { identificationOf, type CompletedMessage } from './payload.ts'
import { makeKey, type LiveFilter } from './filter.ts'

export const subscriptionResolvers: SubscriptionResolvers = {
  identificationCompleted: {
    subscribe: async (_root, { filter }, ctx) => {
      // Set once connection_init is verified; a socket refused there never gets this far, but say so if it does.
      if (ctx.caller === null || ctx.caller === undefined) throw new UnauthenticatedError('Authenticate in connection_init first.')
      const { pubsub } = ctx as MercuriusContext // mercurius' own part of the context: this subscription's pubsub
      try {
        // ctx.signal: the socket's `closed` signal (its backlog counts this subscription's queue).
        return await ctx.request.server.subscriptions.subscribe(pubsub, ctx.caller.id, liveFilter(ctx, filter), ctx.signal)
      } catch (err) {
        ctx.subscriptionFailed?.()
        throw err
      }
    },
    resolve: (message: CompletedMessage) => identificationOf(message)
  }
}

function liveFilter (ctx: AppContext, filter: IdentificationFilter | null | undefined): LiveFilter {
  const caller = ctx.caller ?? ANONYMOUS
  let callerId = caller.roles.has('ReadAll') ? null : caller.id
  if (filter?.caller != null) {
    requireRole(caller, 'ReadAll')
    callerId = filter.caller
  }
  const make = filter?.make == null ? null : makeKey(filter.make)
  if (make === '') throw new BadUserInputError('`filter.make` is blank.', { argument: 'filter.make' })
  return {
    callerId,
    category: filter?.category ?? null,
    make,
    from: filter?.from?.getTime() ?? null,
    to: filter?.to?.getTime() ?? null
  }
}
