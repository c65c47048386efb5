// Whether the process is busy enough that a thumbnail would slow identifications down: the event loop's
// utilisation over the last second above a threshold. Thumbnails are then skipped (counted), as the
// README promises, rather than competing for CPU with answers. Waiting on Azure is not busy: an
// instance with many identifications in flight but an idle CPU still makes them.
import { performance } from 'node:perf_hooks'

const SAMPLE_MS = 1000

export interface BusySignal {
  busy (): boolean
  stop (): void
}

/** `threshold` 1 (or more): never busy. */
export function eventLoopBusy (threshold: number): BusySignal {
  if (threshold >= 1) return { busy: () => false, stop: () => {} }
  let last = performance.eventLoopUtilization()
  let busy = false
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization()
    busy = performance.eventLoopUtilization(now, last).utilization > threshold
    last = now
  }, SAMPLE_MS)
  timer.unref()
  return { busy: () => busy, stop: () => { clearInterval(timer) } }
}
