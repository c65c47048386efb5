// Retention: records older than HISTORY_RETENTION_DAYS are deleted by a background worker, in small
// batches (so a purge never holds the database for long), at start-up and then every hour; thumbnails
// as old too, by their own time (one whose record was never written is reached no other way).
import type { FastifyBaseLogger } from 'fastify'
import type { Worker } from '../workers/plugin.ts'
import type { HistoryConfig } from './config.ts'
import type { HistoryStore } from './store.ts'

const INTERVAL_MS = 60 * 60 * 1000
const BATCH = 1000
const DAY_MS = 86_400_000

export function retentionWorker (
  store: HistoryStore, config: Pick<HistoryConfig, 'retentionDays'>, log: FastifyBaseLogger, ready: () => boolean
): Worker {
  let timer: NodeJS.Timeout | null = null
  let running: Promise<void> | null = null
  let stopping = false

  async function purgeAll (): Promise<void> {
    if (!ready()) return
    const before = new Date(Date.now() - config.retentionDays * DAY_MS)
    let purged = 0
    try {
      for (;;) {
        const count = await store.purge(before, BATCH)
        purged += count
        if (count < BATCH || stopping) break
        await new Promise(resolve => setImmediate(resolve)) // let requests in between batches
      }
      // Thumbnails by their own age: those whose record was never written have no record to go with.
      let thumbnails = 0
      for (;;) {
        if (stopping) break
        const count = await store.purgeThumbnails(before, BATCH)
        thumbnails += count
        if (count < BATCH) break
        await new Promise(resolve => setImmediate(resolve))
      }
      await store.purgeExpiredIdempotencyKeys(new Date())
      if (purged > 0) log.info({ purged, before }, 'history: records past retention deleted')
      if (thumbnails > 0) log.info({ thumbnails, before }, 'history: thumbnails past retention deleted (their records were never written)')
    } catch (err) {
      log.warn({ err }, 'history: retention purge failed; trying again at the next run')
    }
  }

  const run = (): void => {
    if (running !== null) return
    running = purgeAll().finally(() => { running = null })
  }

  return {
    name: 'history-retention',
    start () {
      run()
      timer = setInterval(run, INTERVAL_MS)
      timer.unref()
    },
    async stop () {
      stopping = true
      if (timer !== null) clearInterval(timer)
      await running
    }
  }
}
