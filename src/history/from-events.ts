// What history keeps of each identification event: the record of a completed or a failed one.
import type { IdentificationCompleted, IdentificationFailed } from '../identification/events.ts'
import { OK, type HistoryRecord } from './records.ts'

export function recordOfCompleted ({ identification, caller, detail, cacheKey, batch }: IdentificationCompleted): HistoryRecord {
  return {
    id: identification.id,
    callerId: caller.id,
    callerKind: caller.kind,
    createdAt: identification.createdAt,
    outcome: OK,
    cached: identification.cached,
    language: identification.language,
    detail,
    backend: identification.backend,
    model: identification.model,
    backendName: identification.backendName,
    answer: identification.answer,
    vehicles: identification.vehicles,
    image: identification.image,
    promptTokens: identification.usage?.promptTokens ?? 0,
    completionTokens: identification.usage?.completionTokens ?? 0,
    durationMs: identification.durationMs,
    // A cached answer is not itself a cache entry: the cache answers from model-made records only.
    cacheKey: identification.cached ? null : cacheKey,
    bulkJobId: identification.bulkJobId,
    batch: batch === true
  }
}

export function recordOfFailed (event: IdentificationFailed): HistoryRecord {
  return {
    id: event.id,
    callerId: event.caller.id,
    callerKind: event.caller.kind,
    createdAt: new Date(),
    outcome: event.code,
    cached: false,
    language: event.language,
    detail: event.detail,
    backend: event.backend,
    model: null,
    backendName: null,
    answer: null,
    vehicles: [],
    image: event.image ?? null,
    promptTokens: 0,
    completionTokens: 0,
    durationMs: event.durationMs,
    cacheKey: null,
    bulkJobId: event.bulkJobId ?? null
  }
}
