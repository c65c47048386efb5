// One AbortSignal per request that fires when the client goes away before its answer is sent
// ('close' on the response before 'finish'): it aborts a wait for a slot and the upstream call.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ClientClosedRequestError } from '../errors.ts'

const signals = new WeakMap<FastifyRequest, AbortSignal>()

export function clientGone (request: FastifyRequest, reply: FastifyReply): AbortSignal {
  let signal = signals.get(request)
  if (signal === undefined) {
    const controller = new AbortController()
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new ClientClosedRequestError('The client went away.'))
    })
    signal = controller.signal
    signals.set(request, signal)
  }
  return signal
}
