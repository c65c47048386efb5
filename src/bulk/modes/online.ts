// ONLINE: each prepared photo through the normal identification flow, in the background lane of vision slots
// (src/limits/admission.ts: only while no interactive caller waits, at most BULK_MAX_CONCURRENCY at once), so a
// job never makes an interactive caller wait or be refused. Used when there is no Global Batch deployment
// (the simulated backend included), and for the lines a batch could not answer.
import pLimit from 'p-limit'
import type { BulkModeRunner, ModeContext, ModeStep } from './mode.ts'

/** Items read from the database at a time. */
const PAGE = 200

export function onlineMode ({ concurrency }: { concurrency: number }): BulkModeRunner {
  return {
    name: 'ONLINE',
    async run (ctx: ModeContext): Promise<ModeStep> {
      const limit = pLimit(concurrency)
      for await (const page of ctx.pages(PAGE)) {
        if (ctx.signal.aborted) break
        // An item's failure is its own (recorded FAILED with its code by the flow's event): the others go on.
        await Promise.all(page.map(item => limit(async () => {
          if (ctx.signal.aborted) return
          try {
            await ctx.identifyOnline(item)
          } catch {}
        })))
        await ctx.flushed() // history's buffer never holds more than a page of this job's records
      }
      return ctx.signal.aborted ? { done: false, nextRunAt: Date.now() } : { done: true }
    },
    async cancel () {}, // nothing upstream: the worker's signal stops the items not yet started
    async cleanUp () {}
  }
}
