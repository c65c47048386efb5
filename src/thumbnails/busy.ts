// Whether the process is busy enough that a thumbnail would slow identifications down: over the last
// second, the event loop's utilisation, or the process's CPU time (libvips' threads included) as a share
// of the cores it may use, above a threshold. Thumbnails are then skipped (counted), as the README
// promises, rather than competing for CPU with answers. Waiting on Azure is not busy: an instance with
// many identifications in flight but an idle CPU still makes them.
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'

const SAMPLE_MS = 1000

export interface BusySignal {
  busy (): boolean
  stop (): void
}

/** `threshold` 1 (or more): never busy. */
export function eventLoopBusy (threshold: number): BusySignal {
  if (threshold >= 1) return { busy: () => false, stop: () => {} }
  const cores = availableParallelism() // the CPUs this process may run on (its affinity), not the machine's
  let lastLoop = performance.eventLoopUtilization()
  let lastCpu = process.cpuUsage()
  let lastAt = performance.now()
  let busy = false
  const timer = setInterval(() => {
    const loop = performance.eventLoopUtilization()
    const cpu = process.cpuUsage()
    const at = performance.now()
    const cpuShare = ((cpu.user - lastCpu.user) + (cpu.system - lastCpu.system)) / 1000 / ((at - lastAt) * cores)
    busy = performance.eventLoopUtilization(loop, lastLoop).utilization > threshold || cpuShare > threshold
    lastLoop = loop
    lastCpu = cpu
    lastAt = at
  }, SAMPLE_MS)
  timer.unref()
  return { busy: () => busy, stop: () => { clearInterval(timer) } }
}
