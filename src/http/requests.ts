import type { FastifyRequest } from 'fastify'

/** A multipart POST: an identification (the only thing that carries an upload). Usable in onRequest. */
export function isUploadRequest (request: FastifyRequest): boolean {
  return request.method === 'POST' && (request.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')
}

/** Whose budgets and slots a request spends: the caller's identity, else the client address. */
export function callerKey (request: FastifyRequest): string {
  return request.caller && request.caller.kind !== 'anonymous' ? `caller:${request.caller.id}` : `ip:${request.ip}`
}
