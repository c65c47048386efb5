// The result cache: an identical question (same image as sent, instructions, language, detail, and
// deployment) is answered from history within RESULT_CACHE_TTL_S, per caller or for everyone
// (RESULT_CACHE_SCOPE). A lookup that fails (database down) is a miss: the model answers instead.
import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Caller } from '../callers/caller.ts'
import type { AnswerCache, CachedAnswer } from '../identification/types.ts'
import type { HistoryStore } from './store.ts'

export interface ResultCacheOptions {
  ttlSeconds: number
  scope: 'caller' | 'global'
  /** What answers: the Azure deployment, or SIMULATED. Part of the key: another model is another answer. */
  answeredBy: string
}

export interface ResultCacheHooks {
  hit?: () => void
  miss?: () => void
}

export function createResultCache (
  store: HistoryStore, options: ResultCacheOptions, log: FastifyBaseLogger, hooks: ResultCacheHooks = {}
): AnswerCache {
  return {
    keyFor ({ sentSha256, instructions, language, detail }) {
      // Length-prefixed, so that no two different questions join into the same string.
      const parts = [sentSha256, instructions, language, detail, options.answeredBy]
      const hash = createHash('sha256')
      for (const part of parts) hash.update(`${Buffer.byteLength(part)}:${part}\n`)
      return hash.digest('hex')
    },
    async lookup (key: string, caller: Caller): Promise<CachedAnswer | undefined> {
      const since = new Date(Date.now() - options.ttlSeconds * 1000)
      try {
        const found = await store.findCached(key, since, options.scope === 'caller' ? caller.id : null)
        if (found === undefined) { hooks.miss?.(); return undefined }
        hooks.hit?.()
        return { answer: found.answer, vehicles: found.vehicles, model: found.model, backendName: found.backendName }
      } catch (err) {
        log.warn({ err }, 'result cache: lookup failed; asking the model')
        hooks.miss?.()
        return undefined
      }
    }
  }
}
