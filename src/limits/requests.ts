import type { FastifyRequest } from 'fastify'

/** A multipart POST: an identification (the only thing that carries an upload). Usable in onRequest. */
export function isUploadRequest (request: FastifyRequest): boolean {
  return request.method === 'POST' && (request.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')
}
