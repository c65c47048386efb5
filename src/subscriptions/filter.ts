// Which live identifications a subscriber receives: the owner rule (its own, or everyone's with ReadAll),
// then `IdentificationFilter` with the meaning `identifications` gives it (src/history/store.ts), checked
// in memory against each message instead of in SQL.
import type { VehicleCategory } from '../vision/answer-schema.ts'
import type { CompletedMessage } from './payload.ts'

export interface LiveFilter {
  /** Only this caller's identifications; null: everyone's. */
  callerId: string | null
  category: VehicleCategory | null
  /** Compared as history compares makes (makeKey: trimmed, lower case). */
  make: string | null
  /** Made at or after (milliseconds since the epoch). */
  from: number | null
  /** Made before. */
  to: number | null
}

/**
 * How makes compare: case and surrounding spaces do not matter (John Deere = john deere). The same rule as
 * history's (its makeKey, src/history/records.ts), so a filter means the same live and in `identifications`.
 */
export function makeKey (make: string): string {
  return make.trim().toLowerCase().slice(0, 255)
}

export function matches (message: CompletedMessage, filter: LiveFilter): boolean {
  if (filter.callerId !== null && message.callerId !== filter.callerId) return false
  if (filter.from !== null && message.createdAt < filter.from) return false
  if (filter.to !== null && message.createdAt >= filter.to) return false
  const { category, make } = filter
  if (category === null && make === null) return true
  // With both: one vehicle of both (a John Deere combine, not a John Deere tractor beside a combine).
  return message.vehicles.some(vehicle =>
    (category === null || vehicle.category === category) &&
    (make === null || (vehicle.make !== null && makeKey(vehicle.make) === make)))
}
